"""AttachSpot: prepare the group, then attach the ready spot (desired rises by one; load balancers register it).

Preparing = record the hold and the original values as ASG tags first (so a crash at any point is repairable
by the sweep), raise MaxSize by one when the group is full, suspend AZRebalance when the spot's zone would leave
the zones unbalanced; a group that needs neither is not held at all. Refuses, changing nothing, if
the on-demand already left the group. A retry after a crash that followed the attach finds the spot a member
and does not attach it twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws.clients import aws_handler, client
from tasks.aws.groups import describe_group
from tasks.aws.swap_events import publish
from tasks.core.errors import OnDemandGone
from tasks.core.holds import hold_key, plan_prepare
from tasks.core.swap_events import SPOT_ATTACHED, swap_detail

logger = Logger()


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    spot_id, asg_name = event["spot"]["spot_instance_id"], event["asg_name"]
    group = describe_group(asg_name)
    if group.member(spot_id):  # a re-run after a crash that followed the attach
        held = hold_key(event["execution_name"]) in group.tags
        return {"attached": spot_id, "held": held, "raised_max_to": 0, "suspended": ""}
    member = group.member(event["instance_id"])
    if member is None or not member.in_service:
        state = member.lifecycle_state if member else "gone"
        raise OnDemandGone(f"on-demand {event['instance_id']} is {state} in ASG {group.name}; not attaching")
    plan = plan_prepare(group, event["execution_name"], zone=event["availability_zone"])
    autoscaling = client("autoscaling")
    if plan.tags:
        autoscaling.create_or_update_tags(
            Tags=[
                {"ResourceId": group.name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v,
                 "PropagateAtLaunch": False}
                for k, v in plan.tags.items()
            ]
        )
    if plan.new_max_size is not None:
        autoscaling.update_auto_scaling_group(AutoScalingGroupName=group.name, MaxSize=plan.new_max_size)
    if plan.suspend:
        autoscaling.suspend_processes(AutoScalingGroupName=group.name, ScalingProcesses=list(plan.suspend))
    autoscaling.attach_instances(AutoScalingGroupName=asg_name, InstanceIds=[spot_id])
    logger.info("spot attached", extra={"asg": asg_name, "spot_instance_id": spot_id,
                                        "new_max_size": plan.new_max_size, "suspended": plan.suspend})
    publish(SPOT_ATTACHED, swap_detail(event, launch_hooks_skipped=True))
    return {"attached": spot_id, "held": bool(plan.tags), "raised_max_to": plan.new_max_size or 0,
            "suspended": ",".join(plan.suspend)}
