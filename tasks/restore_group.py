"""RestoreGroup: release this execution's hold; the last hold out puts MaxSize and processes back.

Runs on success and on failure. Settings change before the tags go, so a crash in between stays repairable.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws.clients import aws_handler, client
from tasks.aws.groups import describe_group
from tasks.core.errors import GroupNotFound
from tasks.core.holds import plan_restore
from tasks.core.model import Group

logger = Logger()


def restore(group: Group, leaving: list[str]) -> dict[str, Any]:
    """Apply the restore plan for `leaving` executions; shared with the sweep's repair."""
    plan = plan_restore(group, leaving)
    autoscaling = client("autoscaling")
    if plan.max_size is not None or plan.desired is not None:
        sizes: dict[str, Any] = {"AutoScalingGroupName": group.name}
        if plan.max_size is not None:
            sizes["MaxSize"] = plan.max_size
        if plan.desired is not None:
            sizes["DesiredCapacity"] = plan.desired
        autoscaling.update_auto_scaling_group(**sizes)
    if plan.resume:
        autoscaling.resume_processes(AutoScalingGroupName=group.name, ScalingProcesses=list(plan.resume))
    if plan.delete_tags:
        autoscaling.delete_tags(
            Tags=[{"ResourceId": group.name, "ResourceType": "auto-scaling-group", "Key": k} for k in plan.delete_tags]
        )
    logger.info("group restored", extra={"asg": group.name, "max_size": plan.max_size, "resumed": plan.resume})
    return {"restored": True, "max_size": plan.max_size or 0, "resumed": ",".join(plan.resume)}


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("attach", {}).get("held") is False:  # the attach changed nothing on the group
        return {"restored": False, "max_size": 0, "resumed": ""}
    try:
        group = describe_group(event["asg_name"])
    except GroupNotFound:
        return {"restored": False, "max_size": 0, "resumed": ""}
    return restore(group, [event["execution_name"]])
