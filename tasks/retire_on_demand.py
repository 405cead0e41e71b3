"""RetireOnDemand: once the spot is InService and the group can spare the on-demand, terminate it through the
ASG with ShouldDecrementDesiredCapacity, so load-balancer draining and termination lifecycle hooks run (a plain
detach + TerminateInstances would skip the hooks). Polled until then; guarded by the group read in the same call.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws import aws_handler, client
from tasks.core.progress import retire_decision
from tasks.describe import describe_group

logger = Logger()


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    asg_name, on_demand_id = event["asg_name"], event["instance_id"]
    polls = int(event.get("retire", {}).get("polls", 0)) + 1
    group = describe_group(asg_name)
    decision = retire_decision(
        group,
        on_demand_id=on_demand_id,
        spot_id=event["spot"]["spot_instance_id"],
        polls=polls,
        max_polls=int(event["group_max_polls"]),
    )
    if decision.retire:
        client("autoscaling").terminate_instance_in_auto_scaling_group(
            InstanceId=on_demand_id, ShouldDecrementDesiredCapacity=True
        )
        logger.info("on-demand retired", extra={"asg": asg_name, "instance_id": on_demand_id})
    return {"done": decision.done, "polls": polls, "waiting_for": decision.why_waiting}
