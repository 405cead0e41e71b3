"""ReleaseSpot (spot interruption, polled): once the replacement is InService, or at the deadline, the doomed spot
leaves through the group with decrement, so draining and termination hooks run and desired is back where the
user had it. Behind load balancers the replacement counts once healthy in every one of them.
If EC2 already took the spot (the group then keeps desired), desired comes back down by one."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws.clients import aws_handler, client
from tasks.aws.groups import describe_group
from tasks.aws.load_balancers import group_health
from tasks.aws.swap_events import publish
from tasks.core.interruption import release_decision
from tasks.core.swap_events import INTERRUPTION_HANDLED

logger = Logger()


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    asg_name, spot_id = event["asg_name"], event["instance_id"]
    polls = int(event.get("release", {}).get("polls", 0)) + 1
    group = describe_group(asg_name)
    spot = group.member(spot_id)
    health = group_health(group) if group.behind_load_balancer else None
    decision = release_decision(group, spot_id=spot_id, raised_to=int(event["raised_to"]), now=time.time(),
                                deadline=float(event["deadline"]), health=health)
    autoscaling = client("autoscaling")
    if decision.terminate_spot:
        autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=spot_id, ShouldDecrementDesiredCapacity=True)
    if decision.lower_desired_to is not None:
        autoscaling.set_desired_capacity(AutoScalingGroupName=asg_name, DesiredCapacity=decision.lower_desired_to)
    if decision.done:
        logger.info("doomed spot released", extra={"asg": asg_name, "spot_instance_id": spot_id,
                                                   "why": decision.why, "polls": polls})
        publish(INTERRUPTION_HANDLED, {
            "asg_name": asg_name, "execution_name": event.get("execution_name"), "reason": "interruption",
            "interrupted_instance_id": spot_id, "availability_zone": spot.availability_zone if spot else None,
            "why": decision.why, "released_at": time.time(), "deadline": float(event["deadline"]),
        })
    return {"done": decision.done, "polls": polls, "why": decision.why}
