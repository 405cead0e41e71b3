"""What one swap costs: state transitions, Lambda invocations, AWS API calls made by the task functions, the Step
Functions bill, and throughput, from N happy-path swaps on the embedded AWS with zero waits.

    python bench/swap_cost.py [N]

Targets: <= 14 transitions, <= 7 invocations and <= 15 AWS API calls per swap.

Three group shapes, because what a swap must change on the group differs:
- balanced: 2 instances over 2 zones with headroom: nothing to change, no hold (the common case);
- full: desired == max: MaxSize raised by one and put back (a hold);
- unbalancing: 1 instance in 2 zones: the spot's zone gets 2 of 2, so AZRebalance is suspended and resumed.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import boto3

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.fleet import GroupSpec, create_group, create_network

ZERO_WAITS = {"boot_poll_seconds": 0, "boot_max_polls": 5, "group_poll_seconds": 0, "group_max_polls": 5}
PRICE_PER_TRANSITION = 0.025 / 1000
TARGETS = {"transitions": 14, "invocations": 7, "api_calls": 15}


def history(aws: EmbeddedAws, arn: str) -> list[dict[str, Any]]:
    pages = aws.client("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=arn)
    return [e for page in pages for e in page["events"]]


SHAPES = {"balanced": (2, 4), "full": (2, 2), "unbalancing": (1, 3)}  # desired, max over zones a and b


def measure(shape: str, swaps: int) -> dict[str, float]:
    desired, max_size = SHAPES[shape]
    with EmbeddedAws(boot_delay_seconds=0) as aws:
        network = create_network()
        groups = [create_group(network, GroupSpec(f"{shape}-{i}", desired=desired, max_size=max_size))
                  for i in range(swaps)]
        calls: Counter[str] = Counter()

        def count(event_name: str, **_: Any) -> None:
            service, operation = event_name.split(".", 2)[1:]
            if service != "lambda":  # the interpreter's own Invoke calls; tasks never call Lambda
                calls[f"{service}.{operation}"] += 1

        # Task functions create their clients on the default session, lazily, after this registration.
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-call.*.*", count)
        from tasks.aws.clients import reset_clients

        reset_clients()
        started = time.monotonic()
        arns = [aws.start_swap(g["AutoScalingGroupName"], g["Instances"][0]["InstanceId"], timing=ZERO_WAITS)
                for g in groups]
        results = [aws.wait(arn) for arn in arns]
        elapsed = time.monotonic() - started
        failed = [r["name"] for r in results if r["status"] != "SUCCEEDED"]
        events = [history(aws, arn) for arn in arns]

    if failed:
        raise SystemExit(f"{shape}: {len(failed)} of {swaps} swaps failed: {failed[:3]}")
    transitions = sum(1 for h in events for e in h if e["type"].endswith("StateEntered")) / swaps
    return {
        "transitions": transitions,
        "invocations": sum(1 for h in events for e in h if e["type"] == "LambdaFunctionScheduled") / swaps,
        "api_calls": sum(calls.values()) / swaps,
        "cost_usd": transitions * PRICE_PER_TRANSITION,
        "swaps_per_minute": swaps / elapsed * 60,
        "calls": {name: n / swaps for name, n in sorted(calls.items())},  # type: ignore[dict-item]
    }


def main(swaps: int = 20) -> int:
    """Print the figures; exit 1 when a shape is over a target."""
    # Warm containers, as in a deployed account: the instance-type catalog and on-demand prices are read once
    # per Lambda container, which would otherwise be charged to whichever shape is measured first.
    measure("balanced", 1)
    results = {shape: measure(shape, swaps) for shape in SHAPES}
    print(f"{swaps} happy-path swaps per shape, zero waits, one poll loop each; per swap:")
    print(f"{'':<22}" + "".join(f"{shape:>13}" for shape in SHAPES) + f"{'target':>9}")
    for key in ("transitions", "invocations", "api_calls"):
        row = "".join(f"{results[s][key]:>13.1f}" for s in SHAPES)
        flags = "" if all(results[s][key] <= TARGETS[key] for s in SHAPES) else "  OVER"
        print(f"{key:<22}{row}{TARGETS[key]:>9}{flags}")
    print(f"{'Step Functions USD':<22}" + "".join(f"{results[s]['cost_usd']:>13.6f}" for s in SHAPES))
    print(f"{'swaps per minute':<22}" + "".join(f"{results[s]['swaps_per_minute']:>13.0f}" for s in SHAPES))
    print("API calls per swap by operation:")
    operations = sorted({op for s in SHAPES for op in results[s]["calls"]})  # type: ignore[attr-defined]
    for op in operations:
        print(f"  {op:<48}" + "".join(f"{results[s]['calls'].get(op, 0):>13.2f}" for s in SHAPES))  # type: ignore
    within = all(results[s][k] <= TARGETS[k] for s in SHAPES for k in TARGETS)
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
