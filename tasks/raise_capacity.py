"""RaiseCapacity (spot interruption, first step): one more instance for the group right now, launched by the
group from its own on-demand template, while the doomed spot still serves. Hold tags first (repairable), then
MaxSize and desired in one call (the replacement is requested here), then the slower extras: AZRebalance
suspended, the spot's pool on cooldown."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws.clients import aws_handler, client
from tasks.aws.coordination import cool_pools
from tasks.aws.groups import describe_group
from tasks.aws.load_balancers import longest_drain_seconds
from tasks.core.interruption import NOTICE_SECONDS, plan_raise, poll_seconds, release_deadline
from tasks.core.prices import Pool

logger = Logger()


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    data, execution = event["input"], event["execution_name"]
    asg_name, spot_id = data["asg_name"], data["instance_id"]
    notice = int(data.get("notice_seconds", NOTICE_SECONDS))
    warned_at = datetime.fromisoformat(data["warned_at"].replace("Z", "+00:00")).timestamp()
    logger.append_keys(asg=asg_name, spot_instance_id=spot_id, execution=execution)
    group = describe_group(asg_name)
    drain = longest_drain_seconds(group) if group.behind_load_balancer else 0
    out = {"asg_name": asg_name, "instance_id": spot_id, "execution_name": execution, "drain_seconds": drain,
           "deadline": release_deadline(warned_at, notice, drain_seconds=drain), "poll_seconds": poll_seconds(notice)}
    plan = plan_raise(group, spot_id, execution)
    if isinstance(plan, str):
        logger.info("nothing to replace", extra={"why": plan})
        return {**out, "raised": False, "raised_to": 0, "why": plan}
    autoscaling = client("autoscaling")
    if plan.tags:
        autoscaling.create_or_update_tags(Tags=[
            {"ResourceId": asg_name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v,
             "PropagateAtLaunch": False} for k, v in plan.tags.items()
        ])
    if plan.desired is not None:
        sizes: dict[str, Any] = {"AutoScalingGroupName": asg_name, "DesiredCapacity": plan.desired}
        if plan.new_max_size is not None:
            sizes["MaxSize"] = plan.new_max_size
        autoscaling.update_auto_scaling_group(**sizes)
    requested_at = time.time()
    if plan.suspend:
        autoscaling.suspend_processes(AutoScalingGroupName=asg_name, ScalingProcesses=list(plan.suspend))
    cool_pools([Pool(plan.spot.instance_type, plan.spot.availability_zone)], reason="interruption", source=execution)
    logger.info("replacement requested", extra={"desired": plan.raised_to, "after_warning": requested_at - warned_at})
    return {**out, "raised": True, "raised_to": plan.raised_to, "requested_at": requested_at,
            "why": f"desired raised to {plan.raised_to}"}
