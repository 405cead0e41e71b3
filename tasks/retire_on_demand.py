"""RetireOnDemand: once the spot serves and the group can spare the on-demand, terminate it through the ASG with
ShouldDecrementDesiredCapacity, so load-balancer draining and termination lifecycle hooks run (a plain detach +
TerminateInstances would skip the hooks). Behind load balancers "serves" means healthy in every target group and
InService in every classic ELB, not just InService in the group. Polled until then (lb_max_polls for the health
checks, group_max_polls for the group); guarded by the reads in the same call.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws.clients import aws_handler, client
from tasks.aws.groups import describe_group
from tasks.aws.load_balancers import group_health
from tasks.aws.swap_events import publish
from tasks.core.progress import retire_decision
from tasks.core.swap_events import ON_DEMAND_RETIRED, swap_detail

logger = Logger()


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    asg_name, on_demand_id = event["asg_name"], event["instance_id"]
    last = event.get("retire", {})
    polls, lb_polls = int(last.get("polls", 0)) + 1, int(last.get("lb_polls", 0))
    group = describe_group(asg_name)
    health = group_health(group) if group.behind_load_balancer else None
    decision = retire_decision(
        group, on_demand_id=on_demand_id, spot_id=event["spot"]["spot_instance_id"], polls=polls,
        max_polls=int(event["group_max_polls"]), health=health, lb_polls=lb_polls + 1,
        lb_max_polls=int(event.get("lb_max_polls", 1)),
    )
    if decision.retire:
        client("autoscaling").terminate_instance_in_auto_scaling_group(
            InstanceId=on_demand_id, ShouldDecrementDesiredCapacity=True
        )
        logger.info("on-demand retired", extra={"asg": asg_name, "instance_id": on_demand_id})
        publish(ON_DEMAND_RETIRED, swap_detail(event))
    if decision.waiting_on_load_balancer:
        lb_polls += 1
    wait = int(event.get("lb_poll_seconds", 0) if decision.waiting_on_load_balancer else event["group_poll_seconds"])
    return {"done": decision.done, "polls": polls, "lb_polls": lb_polls, "wait_seconds": wait,
            "waiting_for": decision.why_waiting}
