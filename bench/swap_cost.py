"""What one swap costs: state transitions, Lambda invocations, AWS API calls made by the task functions, the Step
Functions bill, and throughput, from N happy-path swaps on the embedded AWS with zero waits.

    python bench/swap_cost.py [N]

Targets: <= 14 transitions, <= 7 invocations and <= 15 AWS API calls per swap.

Three group shapes, because what a swap must change on the group differs:
- balanced: 2 instances over 2 zones with headroom: nothing to change, no hold (the common case);
- full: desired == max: MaxSize raised by one and put back (a hold);
- unbalancing: 1 instance in 2 zones: the spot's zone gets 2 of 2, so AZRebalance is suspended and resumed.

All shapes run in one embedded account, one after the other, after one warm-up swap: warm containers, as in a
deployed account, so what a container keeps (the instance-type catalog, on-demand and spot prices, commitments,
cooldown reads, each for its own documented time) is not re-read per shape and charged to it. Every call a task
function makes counts, whichever handler makes it; the breakdown attributes each to the handler (tasks/<name>.py)
innermost on the stack when it was made.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import boto3

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import GroupSpec, create_group, create_network

# The shortest polls a timing may ask for (2 s), waited at x0.01 (EmbeddedAws wait_scale).
SHORT_WAITS = {"boot_poll_seconds": 2, "boot_max_polls": 5, "group_poll_seconds": 2, "group_max_polls": 5}
PRICE_PER_TRANSITION = 0.025 / 1000
TARGETS = {"transitions": 14, "invocations": 7, "api_calls": 15}
SHAPES = {"balanced": (2, 4), "full": (2, 2), "unbalancing": (1, 3)}  # desired, max over zones a and b


def history(aws: EmbeddedAws, arn: str) -> list[dict[str, Any]]:
    pages = aws.client("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=arn)
    return [e for page in pages for e in page["events"]]


def handler_of(stack: list[traceback.FrameSummary]) -> str:
    """The innermost tasks/<handler>.py frame (not tasks/aws or tasks/core): whose call this is."""
    for frame in reversed(stack):
        path = Path(frame.filename)
        if path.parent.name == "tasks" and path.name != "__init__.py":
            return path.stem
    return "other"


class CallCounter:
    """AWS API calls made on the default session (the task functions'), by handler and operation."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def __call__(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        if service == "lambda":  # the interpreter's own Invoke calls; tasks never call Lambda
            return
        where = handler_of(traceback.extract_stack())
        with self._lock:
            self.calls[(where, f"{service}.{operation}")] += 1

    def take(self) -> Counter[tuple[str, str]]:
        with self._lock:
            taken, self.calls = self.calls, Counter()
            return taken


def run(aws: EmbeddedAws, groups: list[dict[str, Any]]) -> tuple[list[str], list[str], float]:
    started = time.monotonic()
    arns = [aws.start_swap(g["AutoScalingGroupName"], g["Instances"][0]["InstanceId"], timing=SHORT_WAITS)
            for g in groups]
    results = [aws.wait(arn) for arn in arns]
    elapsed = time.monotonic() - started
    failed = [r["name"] for r in results if r["status"] != "SUCCEEDED"]
    return arns, failed, elapsed


def measure_all(swaps: int) -> dict[str, dict[str, Any]]:
    """Every shape in one account after a warm-up swap; per swap figures by shape."""
    results: dict[str, dict[str, Any]] = {}
    with EmbeddedAws(boot_delay_seconds=0, wait_scale=0.01) as aws:
        network = create_network()
        warm_up = create_group(network, GroupSpec("warm-up", desired=SHAPES["balanced"][0],
                                                  max_size=SHAPES["balanced"][1]))
        fleets = {shape: [create_group(network, GroupSpec(f"{shape}-{i}", desired=d, max_size=m))
                          for i in range(swaps)] for shape, (d, m) in SHAPES.items()}
        counter = CallCounter()
        # Task functions create their clients on the default session, lazily, after this registration.
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-call.*.*", counter)
        from tasks.aws.clients import reset_clients

        reset_clients()
        _, failed, _ = run(aws, [warm_up])
        if failed:
            raise SystemExit(f"warm-up swap failed: {failed}")
        counter.take()
        for shape, groups in fleets.items():
            arns, failed, elapsed = run(aws, groups)
            calls = counter.take()
            if failed:
                raise SystemExit(f"{shape}: {len(failed)} of {swaps} swaps failed: {failed[:3]}")
            events = [history(aws, arn) for arn in arns]
            transitions = sum(1 for h in events for e in h if e["type"].endswith("StateEntered")) / swaps
            by_operation: Counter[str] = Counter()
            by_handler: Counter[str] = Counter()
            for (where, operation), n in calls.items():
                by_operation[operation] += n
                by_handler[where] += n
            results[shape] = {
                "transitions": transitions,
                "invocations": sum(1 for h in events for e in h if e["type"] == "LambdaFunctionScheduled") / swaps,
                "api_calls": sum(calls.values()) / swaps,
                "cost_usd": transitions * PRICE_PER_TRANSITION,
                "swaps_per_minute": swaps / elapsed * 60,
                "calls": {op: n / swaps for op, n in by_operation.items()},
                "handlers": {h: n / swaps for h, n in by_handler.items()},
                "handler_calls": {f"{h} {op}": n / swaps for (h, op), n in calls.items()},
            }
    return results


def table(title: str, results: dict[str, dict[str, Any]], key: str) -> None:
    print(title)
    rows = sorted({row for s in SHAPES for row in results[s][key]})
    for row in rows:
        print(f"  {row:<60}" + "".join(f"{results[s][key].get(row, 0):>13.2f}" for s in SHAPES))


def main(swaps: int = 20) -> int:
    """Print the figures; exit 1 when a shape is over a target."""
    results = measure_all(swaps)
    print(f"{swaps} happy-path swaps per shape in one account after a warm-up swap, zero waits; per swap:")
    print(f"{'':<22}" + "".join(f"{shape:>13}" for shape in SHAPES) + f"{'target':>9}")
    for key in ("transitions", "invocations", "api_calls"):
        row = "".join(f"{results[s][key]:>13.1f}" for s in SHAPES)
        flags = "" if all(results[s][key] <= TARGETS[key] for s in SHAPES) else "  OVER"
        print(f"{key:<22}{row}{TARGETS[key]:>9}{flags}")
    print(f"{'Step Functions USD':<22}" + "".join(f"{results[s]['cost_usd']:>13.6f}" for s in SHAPES))
    print(f"{'swaps per minute':<22}" + "".join(f"{results[s]['swaps_per_minute']:>13.0f}" for s in SHAPES))
    table("API calls per swap by operation:", results, "calls")
    table("API calls per swap by handler:", results, "handlers")
    table("API calls per swap by handler and operation:", results, "handler_calls")
    within = all(results[s][k] <= TARGETS[k] for s in SHAPES for k in TARGETS)
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
