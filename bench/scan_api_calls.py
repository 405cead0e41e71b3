"""What one scan costs as the fleet grows: AWS API calls (counted with botocore's event hooks), calls per ASG and
CPU seconds, for one dry-run scan of 10, 100 and 1,000 opted-in ASGs of 10 on-demand instances each.

    python bench/scan_api_calls.py [SIZE ...]

Target: <= 25 calls for 1,000 ASGs / 10,000 instances. The embedded AWS runs in this process, so the scanner's
own CPU is the total less the time spent inside AWS calls (moto's work, botocore's serialising and parsing).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import boto3

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import IMAGE_ID
from stack.description import STACK
from tasks.aws.clients import reset_clients
from tasks.core.tags import GRACE_PERIOD, OPT_IN

SIZES = (10, 100, 1000)
INSTANCES_PER_GROUP = 10
TARGET = (1000, 25)  # at most 25 calls for 1,000 groups


@dataclass
class Figures:
    groups: int
    instances: int
    calls: Counter[str]
    cpu_total: float
    cpu_in_aws: float
    wall: float
    build: float

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def build_fleet(groups: int) -> None:
    """`groups` opted-in ASGs of 10 on-demand instances, past their grace period, one shared launch template."""
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [  # /18s: room for 16,000 instances each (the demo network's /24s hold 250)
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{64 * i}.0/18", AvailabilityZone=f"us-east-1{zone}")["Subnet"][
            "SubnetId"] for i, zone in enumerate("abc")]
    template = ec2.create_launch_template(
        LaunchTemplateName="bench", LaunchTemplateData={"ImageId": IMAGE_ID, "InstanceType": "m5.large"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling = boto3.client("autoscaling")
    for n in range(groups):
        name = f"bench-{n:04d}"
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
            MinSize=0, MaxSize=INSTANCES_PER_GROUP + 1, DesiredCapacity=INSTANCES_PER_GROUP,
            VPCZoneIdentifier=",".join(subnets),
            Tags=[{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v,
                   "PropagateAtLaunch": False} for k, v in ((OPT_IN, "true"), (GRACE_PERIOD, "0"))],
        )


def measure(groups: int) -> Figures:
    with EmbeddedAws(boot_delay_seconds=0) as aws:
        started = time.monotonic()
        build_fleet(groups)
        build = time.monotonic() - started
        calls: Counter[str] = Counter()
        in_aws = {"cpu": 0.0, "since": 0.0}

        def before(event_name: str, **_: Any) -> None:
            service, operation = event_name.split(".", 2)[1:]
            calls[f"{service}.{operation}"] += 1
            in_aws["since"] = time.process_time()

        def after(**_: Any) -> None:
            in_aws["cpu"] += time.process_time() - in_aws["since"]

        # The scanner makes its clients on the default session, lazily, after these registrations.
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-call.*.*", before)
        boto3.DEFAULT_SESSION.events.register("after-call.*.*", after)
        reset_clients()
        # The scanner's environment as deployed (state machine ARN and whatever else it reads).
        deployed = aws.client("lambda").get_function_configuration(FunctionName=STACK.function("scanner").name())
        os.environ.update(deployed["Environment"]["Variables"])
        from tasks import scan

        assert STACK.function("scanner").handler == "tasks.scan.handler"
        cpu, wall = time.process_time(), time.monotonic()
        result = scan.handler({"dry_run": True}, None)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        replace = sum(1 for p in result["plan"] if p["action"] == "replace")
        if (result["groups_scanned"], len(result["plan"]), replace) != (groups, groups * INSTANCES_PER_GROUP, groups):
            reasons = Counter(p["why"].split(" (")[0] for p in result["plan"] if p["action"] == "skip")
            raise SystemExit(f"unexpected plan at {groups} groups: {result['groups_scanned']} scanned, "
                             f"{len(result['plan'])} verdicts, {replace} replacements; skips: {reasons.most_common(5)}")
        return Figures(groups, groups * INSTANCES_PER_GROUP, calls, cpu, in_aws["cpu"], wall, build)


def main(sizes: tuple[int, ...] = SIZES) -> int:
    rows = []
    for size in sizes:
        figures = measure(size)
        rows.append(figures)
        print(f"measured {size} groups (fleet built in {figures.build:.1f}s)", file=sys.stderr)
    print(f"{'ASGs':>6} {'instances':>10} {'calls':>6} {'calls/ASG':>10} {'scanner CPU s':>14} "
          f"{'total CPU s':>12} {'wall s':>8}")
    for f in rows:
        print(f"{f.groups:>6} {f.instances:>10} {f.total_calls:>6} {f.total_calls / f.groups:>10.3f} "
              f"{f.cpu_total - f.cpu_in_aws:>14.2f} {f.cpu_total:>12.2f} {f.wall:>8.2f}")
    largest = rows[-1]
    print(f"calls at {largest.groups} ASGs by operation:")
    for name, count in sorted(largest.calls.items()):
        print(f"  {name:<44}{count:>4}")
    at_target = [f for f in rows if f.groups == TARGET[0]]
    if at_target:
        ok = at_target[0].total_calls <= TARGET[1]
        print(f"target: <= {TARGET[1]} calls at {TARGET[0]} ASGs: {at_target[0].total_calls} {'ok' if ok else 'OVER'}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(tuple(int(a) for a in sys.argv[1:]) or SIZES))
