"""ReleaseSpot (spot interruption, polled): once the replacement is InService, or at the deadline, the doomed spot
leaves through the group with decrement, so draining and termination hooks run and desired is back where the
user had it. If EC2 already took the spot (the group then keeps desired), desired comes back down by one."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws import aws_handler, client
from tasks.core.interruption import release_decision
from tasks.describe import describe_group

logger = Logger()


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    asg_name, spot_id = event["asg_name"], event["instance_id"]
    polls = int(event.get("release", {}).get("polls", 0)) + 1
    decision = release_decision(describe_group(asg_name), spot_id=spot_id, raised_to=int(event["raised_to"]),
                                now=time.time(), deadline=float(event["deadline"]))
    autoscaling = client("autoscaling")
    if decision.terminate_spot:
        autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=spot_id, ShouldDecrementDesiredCapacity=True)
    if decision.lower_desired_to is not None:
        autoscaling.set_desired_capacity(AutoScalingGroupName=asg_name, DesiredCapacity=decision.lower_desired_to)
    if decision.done:
        logger.info("doomed spot released", extra={"asg": asg_name, "spot_instance_id": spot_id,
                                                   "why": decision.why, "polls": polls})
    return {"done": decision.done, "polls": polls, "why": decision.why}
