"""Soak: 200 swaps across 20 ASGs on the embedded AWS, scanner-driven, with AWS faults injected at random (fixed
seed) into every call the task functions make. Prints swaps succeeded / skipped / failed, invariant violations and
orphans (both must be 0), and wall time.

    python bench/soak.py [--seed 7] [--swaps 200] [--groups 20] [--rate 0.03] [--crash-rate 0.01] [--trace]

`--trace` prints, for each group with a violation or a failed swap, every handler invocation in order (function,
execution, error, the group's MaxSize/desired and its coordination record right after) and the faults injected into
its executions: the way to find the fault path behind a violation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from typing import Any

from asg_optimizer.local import seam
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.faults import FaultInjector, Injected
from asg_optimizer.local.group_builder import GroupSpec, create_group, create_network
from asg_optimizer.local.invariants import InvariantChecker

# The shortest polls a timing may ask for (2 s), waited at x0.05 (EmbeddedAws wait_scale).
SHORT_WAITS = {"boot_poll_seconds": 2, "boot_max_polls": 20, "group_poll_seconds": 2, "group_max_polls": 20}
SKIPPED = {"no-capacity", "refused", "OnDemandGone"}


def invoke(aws: EmbeddedAws, function: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = aws.client("lambda").invoke(FunctionName=f"asg-optimizer-{function}", Payload=json.dumps(payload))
    return json.loads(response["Payload"].read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--swaps", type=int, default=200)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.03, help="chance that any one AWS call fails")
    parser.add_argument("--crash-rate", type=float, default=0.01, help="chance a Lambda dies after an AWS call")
    parser.add_argument("--retry-scale", type=float, default=0.05,
                        help="retry back-offs sleep this fraction of their interval (1: as in AWS)")
    parser.add_argument("--trace", action="store_true",
                        help="print the invocations, record and faults of each group with a violation or failure")
    args = parser.parse_args()

    started, cpu_started = time.monotonic(), time.process_time()
    outcomes: Counter[str] = Counter()
    causes: dict[str, list[str]] = defaultdict(list)
    with EmbeddedAws(boot_delay_seconds=0.2, retry_scale=args.retry_scale, wait_scale=0.05) as aws:
        network = create_network()
        names = [f"soak-{i:02d}" for i in range(args.groups)]
        for i, name in enumerate(names):
            per_group = -(-args.swaps // args.groups)
            create_group(network, GroupSpec(name, desired=per_group, max_size=per_group + (i % 2),
                                            extra_tags={"AsgOptimiser:MaxParallel": "3"}))
        trace: dict[str, list[str]] = defaultdict(list)
        if args.trace:
            seam.observers.append(_tracer(aws, trace))
        with InvariantChecker(names) as check, FaultInjector() as faults:
            faults.at_random(args.seed, rate=args.rate, crash_rate=args.crash_rate,
                             codes=("Throttling", "ResourceContention", "InternalError"))
            # A thin spot market: every pool of the fleet's zones has little spare capacity, so pools run dry
            # mid-soak and swaps end `no-capacity` (the pool cools down; the scanner moves on).
            for instance_type in ("m5.large", "m6i.large", "m7i.large", "m7i-flex.large", "m5a.large", "m6a.large"):
                for zone in ("us-east-1a", "us-east-1b"):
                    aws.ec2_model.market.set_capacity(instance_type, zone, 8)
            sfn, total, rounds = aws.client("stepfunctions"), 0, 0
            while total < args.swaps and rounds < 60:
                rounds += 1
                faults.paused = True  # the swaps are under test, not the scan that starts them
                result = invoke(aws, "scanner", {"timing": SHORT_WAITS})
                faults.paused = False
                names_started = result.get("started", [])[: args.swaps - total]
                total += len(names_started)
                print(f"scan {rounds}: started {len(names_started)} ({total} so far, "
                      f"{time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
                for name in names_started:
                    arn = f"{aws.deployment.replace_arn.replace(':stateMachine:', ':execution:')}:{name}"
                    described = aws.wait(arn, timeout=1800)  # a round of 60 swaps, serialized
                    outcome = described["status"] if described["status"] == "SUCCEEDED" else described.get("error")
                    reported = json.loads(described.get("output") or "{}").get("outcome")
                    if outcome == "SUCCEEDED" and reported in ("no-capacity", "refused"):
                        outcome = reported
                    outcomes["skipped" if outcome in SKIPPED else str(outcome)] += 1
                    if outcome not in SKIPPED and outcome != "SUCCEEDED":
                        causes[str(outcome)].append(str(described.get("cause", ""))[:300])
                if not names_started and all(
                    not g["Instances"] or all(_is_spot(aws, i["InstanceId"]) for i in g["Instances"])
                    for g in aws.client("autoscaling").describe_auto_scaling_groups(
                        AutoScalingGroupNames=names)["AutoScalingGroups"]
                ):
                    break
            faults.stop()
            injected = len(faults.log)
            trail = list(faults.trail)
            sweep = invoke(aws, "sweep", {"orphan_after_seconds": 0})
            violations = check.finish()
        del sfn
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu_started
    samples = len(check.samples) // max(1, args.groups)
    orphans = [v for v in violations if "outside any group" in v]
    print(f"seed {args.seed}: {total} swaps across {args.groups} ASGs in {rounds} scans, {injected} faults injected")
    print(f"succeeded  {outcomes.pop('SUCCEEDED', 0)}")
    print(f"skipped    {outcomes.pop('skipped', 0)}")
    print(f"failed     {sum(outcomes.values())}  {dict(sorted(outcomes.items()))}")
    print(f"sweep      terminated {len(sweep.get('terminated', []))}, repaired {len(sweep.get('repaired', []))}")
    print(f"violations {len(violations) - len(orphans)}")
    print(f"orphans    {len(orphans)}")
    print(f"wall time  {seconds:.1f} s (one process; retry back-offs x{args.retry_scale})")
    print(f"cpu        {cpu:.1f} s, {1000 * cpu / max(1, total):.0f} ms a swap (fleet build included)")
    print(f"checker    {samples} samples of {args.groups} groups, "
          f"{1000 * check.sample_seconds / max(1, samples):.2f} ms a sample")
    for error, texts in sorted(causes.items()):
        print(f"  {error}: {texts[0]}")
    for violation in violations:
        print(f"  {violation}")
    for asg_name in sorted(trace) if args.trace else ():
        if any(f"ASG {asg_name} " in v for v in violations) or any(
                f"{asg_name} " in t for texts in causes.values() for t in texts):
            _print_trace(asg_name, trace[asg_name], trail)
    return 1 if violations else 0


def _tracer(aws: EmbeddedAws, trace: dict[str, list[str]]) -> seam.Observer:
    """A seam observer noting each invocation on a group with the group and its record as the handler left them
    (read with the harness's own clients, never faulted)."""
    table = aws.deployment.table_names["cooldowns"]

    def observe(function: str, event: dict[str, Any], result: dict[str, Any], errored: bool) -> None:
        asg_name = event.get("asg_name")
        if not isinstance(asg_name, str):
            return
        group = aws.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[asg_name])["AutoScalingGroups"]
        sizes = f"max {group[0]['MaxSize']} desired {group[0]['DesiredCapacity']}" if group else "gone"
        item = aws.client("dynamodb").get_item(TableName=table, Key={"cooldown_key": {"S": f"group#{asg_name}"}})
        record = {k: v for k, v in item.get("Item", {}).items() if not k.startswith(("claim#", "cooldown_key"))}
        outcome = result.get("errorType", "error") if errored else "ok"
        name = function.removeprefix("asg-optimizer-")
        trace[asg_name].append(f"{name} {event.get('execution_name', '')} {outcome}: {sizes}; "
                               f"record {json.dumps(record, sort_keys=True)}")

    return observe


def _print_trace(asg_name: str, trace: list[str], trail: list[Injected]) -> None:
    print(f"trace of {asg_name}:")
    for line in trace:
        print(f"  {line}")
    executions = {line.split()[1] for line in trace if len(line.split()) > 1}
    print(f"faults injected into {asg_name}'s executions:")
    for fault in trail:
        if fault.execution in executions:
            print(f"  {fault.execution} {fault.function} {fault.operation}: {fault.what}")


def _is_spot(aws: EmbeddedAws, instance_id: str) -> bool:
    reservations = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0].get("InstanceLifecycle") == "spot"


if __name__ == "__main__":
    sys.exit(main())
