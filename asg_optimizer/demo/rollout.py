"""The demo's rollout: a new AMI is released as version 2 of the workers' launch template, and a short rollout
(one instance a batch, no bake) replaces every instance through the replacement workflow, each keeping its market,
never below desired in service."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import new_template_version
from asg_optimizer.local.invariants import InvariantChecker
from stack.description import ROLLOUT
from tasks.core.rollout import VERSION_TAG, rollout_name


@dataclass
class RolloutRun:
    asg_name: str
    execution: str = ""
    status: str = ""
    version: str = ""
    batches: int = 0
    on_target: int = 0
    markets_before: list[str] = field(default_factory=list)
    markets_after: list[str] = field(default_factory=list)
    lowest_in_service: int = 0
    desired: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.status == "SUCCEEDED" and not self.violations and self.on_target == self.desired
                and self.markets_after == self.markets_before and self.lowest_in_service >= self.desired)

    @property
    def line(self) -> str:
        return (f"{self.asg_name} to launch template version {self.version} in {self.batches} batches: "
                f"{self.on_target} of {self.desired} instances on it, markets {', '.join(self.markets_after)} kept, "
                f"lowest in-service {self.lowest_in_service} for desired {self.desired}; {self.execution} "
                f"{self.status}")


def _members(aws: EmbeddedAws, asg_name: str) -> list[dict[str, Any]]:
    group = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])[
        "AutoScalingGroups"][0]
    ids = [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"]
    found = aws.client("ec2").describe_instances(InstanceIds=ids)["Reservations"] if ids else []
    return [i for r in found for i in r["Instances"]]


def run_rollout(aws: EmbeddedAws, asg_name: str, timing: dict[str, int], timeout: float = 120.0) -> RolloutRun:
    group = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])[
        "AutoScalingGroups"][0]
    run = RolloutRun(asg_name, desired=group["DesiredCapacity"])
    run.markets_before = sorted(i.get("InstanceLifecycle", "on-demand") for i in _members(aws, asg_name))
    run.version = new_template_version(group)
    run.execution = rollout_name(asg_name, datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    payload = {"asg_name": asg_name, "to": {"launch_template_version": run.version}, "batch": "1",
               "timing": timing}
    with InvariantChecker([asg_name]) as watch:
        arn = aws.client("stepfunctions").start_execution(
            stateMachineArn=aws.deployment.state_machine_arns[ROLLOUT], name=run.execution,
            input=json.dumps(payload))["executionArn"]
        described = aws.wait(arn, timeout=timeout)
        run.violations = watch.finish()
    run.status = described["status"]
    run.lowest_in_service = watch.lowest_in_service(asg_name)
    history = aws.client("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=arn)
    run.batches = sum(1 for page in history for e in page["events"] if e["type"] == "MapStateEntered")
    after = _members(aws, asg_name)
    run.markets_after = sorted(i.get("InstanceLifecycle", "on-demand") for i in after)
    run.on_target = sum(1 for i in after for t in i.get("Tags", [])
                        if t["Key"] == VERSION_TAG and t["Value"] == run.version)
    return run
