"""What one swap costs: state transitions, Lambda invocations, AWS API calls made by the task functions, the Step
Functions bill, and throughput, from N happy-path swaps on the embedded AWS with zero waits.

    python bench/swap_cost.py [N]

Targets: <= 14 transitions, <= 7 invocations and <= 15 AWS API calls per swap.
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


def main(swaps: int = 20) -> int:
    with EmbeddedAws(boot_delay_seconds=0) as aws:
        network = create_network()
        groups = [create_group(network, GroupSpec(f"bench-{i}", desired=1, max_size=3)) for i in range(swaps)]
        calls: Counter[str] = Counter()

        def count(event_name: str, **_: Any) -> None:
            _, service, operation = event_name.split(".", 2)
            if service != "lambda":  # the interpreter's own Invoke calls; tasks never call Lambda
                calls[f"{service}.{operation}"] += 1

        # Task functions create their clients on the default session, lazily, after this registration.
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-call.*.*", count)  # type: ignore[union-attr]
        from tasks.aws import reset_clients

        reset_clients()
        started = time.monotonic()
        arns = [aws.start_swap(g["AutoScalingGroupName"], g["Instances"][0]["InstanceId"], timing=ZERO_WAITS)
                for g in groups]
        results = [aws.wait(arn) for arn in arns]
        elapsed = time.monotonic() - started
        failed = [r["name"] for r in results if r["status"] != "SUCCEEDED"]
        events = [history(aws, arn) for arn in arns]

    transitions = sum(1 for h in events for e in h if e["type"].endswith("StateEntered")) / swaps
    invocations = sum(1 for h in events for e in h if e["type"] == "LambdaFunctionScheduled") / swaps
    api_calls = sum(calls.values()) / swaps
    figures = {"transitions": transitions, "invocations": invocations, "api_calls": api_calls}
    print(f"swaps: {swaps} ({len(failed)} failed)")
    print(f"{'per swap':<28}{'measured':>10}{'target':>10}")
    for key, value in figures.items():
        flag = "ok" if value <= TARGETS[key] else "OVER"
        print(f"{key:<28}{value:>10.1f}{TARGETS[key]:>10}  {flag}")
    print(f"{'Step Functions cost (USD)':<28}{transitions * PRICE_PER_TRANSITION:>10.6f}")
    print(f"{'swaps per minute':<28}{swaps / elapsed * 60:>10.1f}")
    print("API calls by operation (all swaps):")
    for name, n in sorted(calls.items()):
        print(f"  {name:<48}{n:>6}  ({n / swaps:.1f}/swap)")
    within = all(figures[k] <= TARGETS[k] for k in TARGETS) and not failed
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
