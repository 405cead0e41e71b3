"""Reading the embedded AWS after an execution: the path through the states, the group, our instances."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asg_optimizer.local import seam
from asg_optimizer.local.embedded import EmbeddedAws
from tasks.aws.coordination import begin_section, group_items
from tasks.aws.group_writes import apply_take
from tasks.aws.groups import describe_group
from tasks.core.coordination import after_take, plan_take
from tasks.core.tags import EXECUTION


def states_entered(aws: EmbeddedAws, execution_arn: str) -> list[str]:
    pages = aws.client("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return [
        e["stateEnteredEventDetails"]["name"]
        for page in pages
        for e in page["events"]
        if e["type"].endswith("StateEntered")
    ]


def cooling(aws: EmbeddedAws) -> dict[str, str]:
    """Cooldown key -> reason of every cooldown item (group records share the table and are skipped)."""
    items = aws.client("dynamodb").scan(TableName=aws.deployment.table_names["cooldowns"])["Items"]
    return {i["cooldown_key"]["S"]: i["reason"]["S"] for i in items if "reason" in i}


def wait_for_state(aws: EmbeddedAws, execution_arn: str, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while state not in states_entered(aws, execution_arn):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{state} not entered in {timeout}s")
        time.sleep(0.05)


@contextmanager
def validate_held(*instance_ids: str) -> Iterator[None]:
    """Swaps of these instances (of any, when none are named) stay RUNNING in Validate, their answer held back,
    until the block ends: a test looks at a running swap however fast the machine would otherwise finish it."""
    done = threading.Event()

    def hold(function: str, event: dict[str, Any], result: dict[str, Any], errored: bool) -> None:
        swap = event.get("input") or {}  # Validate gets the execution's input under "input"
        if function.endswith("-validate") and (not instance_ids or swap.get("instance_id") in instance_ids):
            done.wait(timeout=120)  # a guard against a test that forgets to end the block, not a timing

    seam.observers.append(hold)
    try:
        yield
    finally:
        done.set()
        seam.observers.remove(hold)


def group(aws: EmbeddedAws, name: str) -> dict[str, Any]:
    return aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def members(aws: EmbeddedAws, name: str) -> dict[str, str]:
    return {i["InstanceId"]: i["LifecycleState"] for i in group(aws, name)["Instances"]}


def instances(aws: EmbeddedAws, **filters: str) -> list[dict[str, Any]]:
    flt = [{"Name": k.replace("_", "-"), "Values": [v]} for k, v in filters.items()]
    reservations = aws.client("ec2").describe_instances(Filters=flt)["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def state_of(aws: EmbeddedAws, instance_id: str) -> str:
    return aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
        "State"
    ]["Name"]


def launched_by(aws: EmbeddedAws, execution_name: str) -> list[dict[str, Any]]:
    reservations = aws.client("ec2").describe_instances(
        Filters=[{"Name": f"tag:{EXECUTION}", "Values": [execution_name]}]
    )["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def settings(aws: EmbeddedAws, name: str) -> dict[str, Any]:
    """What a swap may change and must restore."""
    g = group(aws, name)
    return {
        "desired": g["DesiredCapacity"],
        "min": g["MinSize"],
        "max": g["MaxSize"],
        "suspended": sorted(p["ProcessName"] for p in g["SuspendedProcesses"]),
        "tags": sorted((t["Key"], t["Value"]) for t in g["Tags"]),
    }


def cause(described: dict[str, Any]) -> str:
    """The failed step's error message, from the Lambda error payload the Fail state carries."""
    raw = described.get("cause", "")
    try:
        return str(json.loads(raw).get("errorMessage", raw))
    except (ValueError, AttributeError):
        return raw


def refusal(described: dict[str, Any]) -> tuple[str, str]:
    """(reason, why) of an execution Validate refused: it ends SUCCEEDED with outcome `refused`, not FAILED."""
    assert described["status"] == "SUCCEEDED", described.get("cause")
    output = json.loads(described["output"])
    assert output["outcome"] == "refused", output
    return output["reason"], output["why"]


def hold(aws: EmbeddedAws, asg_name: str, execution: str) -> None:
    """What RaiseCapacity's section does, without the raise: take the lease with the plan, make the writes
    (MaxSize if full, AZRebalance suspended), release with the hold recorded."""
    os.environ["COOLDOWN_TABLE"] = aws.deployment.table_names["cooldowns"]
    section = begin_section(asg_name, execution, describe_group(asg_name),
                            lambda g: plan_take(g, raise_desired=False))
    assert section.take is not None
    apply_take(asg_name, section.take)
    section.release(after_take(section.found, execution, section.take, section.group,
                               desired_after=section.group.desired))


def holders(aws: EmbeddedAws, asg_name: str) -> list[str]:
    """The executions holding the group, from its coordination record."""
    os.environ["COOLDOWN_TABLE"] = aws.deployment.table_names["cooldowns"]
    item = next((i for i in group_items() if i["cooldown_key"] == f"group#{asg_name}"), {})
    return sorted(k[len("hold#"):] for k in item if k.startswith("hold#"))


def spot_fleet_request(raw_group: dict[str, Any], subnet_id: str, token: str) -> dict[str, Any]:
    """An `instant` spot CreateFleet of one m5.large from the group's own template, under a client token."""
    return {
        "Type": "instant", "ClientToken": token,
        "TargetCapacitySpecification": {"TotalTargetCapacity": 1, "DefaultTargetCapacityType": "spot"},
        "SpotOptions": {"AllocationStrategy": "price-capacity-optimized"},
        "LaunchTemplateConfigs": [{"LaunchTemplateSpecification": {
            "LaunchTemplateId": raw_group["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
            "Overrides": [{"InstanceType": "m5.large", "SubnetId": subnet_id}]}],
    }
