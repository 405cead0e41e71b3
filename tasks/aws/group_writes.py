"""The group writes a coordination section makes (tasks.core.coordination plans them): MaxSize, desired and
suspended processes. Each is absolute or a set operation, so a retried section re-applies them harmlessly."""

from __future__ import annotations

from typing import Any

from tasks.aws.clients import client
from tasks.core.coordination import GiveBack, Take


def apply_take(asg_name: str, take: Take) -> None:
    """MaxSize and desired in one call (the replacement is requested here), then the suspension."""
    autoscaling = client("autoscaling")
    sizes: dict[str, Any] = {}
    if take.max_size is not None:
        sizes["MaxSize"] = take.max_size
    if take.desired is not None:
        sizes["DesiredCapacity"] = take.desired
    if sizes:
        autoscaling.update_auto_scaling_group(AutoScalingGroupName=asg_name, **sizes)
    if take.suspend:
        autoscaling.suspend_processes(AutoScalingGroupName=asg_name, ScalingProcesses=list(take.suspend))


def apply_give_back(asg_name: str, give: GiveBack, logger: Any) -> None:
    autoscaling = client("autoscaling")
    if give.max_size is not None:
        autoscaling.update_auto_scaling_group(AutoScalingGroupName=asg_name, MaxSize=give.max_size)
    if give.resume:
        autoscaling.resume_processes(AutoScalingGroupName=asg_name, ScalingProcesses=list(give.resume))
    for warning in give.warnings:
        logger.warning(warning)
