"""RetireOnDemand (polled, when AttachSpot could not retire at once): once the spot serves and the group can spare
the on-demand, terminate it through the ASG with ShouldDecrementDesiredCapacity, so load-balancer draining and
termination lifecycle hooks run (a plain detach + TerminateInstances would skip the hooks), in one section under
the group's lease that also gives back what AttachSpot took (tasks.core.coordination). Behind load balancers
"serves" means healthy in every target group and InService in every classic ELB, not just InService in the group.
Polled until then (lb_max_polls for the health checks, group_max_polls for the group).
"""

from __future__ import annotations

from typing import Any

from tasks.aws.clients import client
from tasks.aws.coordination import begin_section
from tasks.aws.group_writes import apply_give_back
from tasks.aws.groups import describe_group
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.aws.load_balancers import group_health
from tasks.aws.swap_events import publish
from tasks.core.coordination import plan_give_back
from tasks.core.model import Group
from tasks.core.readiness import RetireDecision, retire_decision
from tasks.core.steps import RetireInput, RetireResult
from tasks.core.swap_events import ON_DEMAND_RETIRED, swap_detail


@logged_metered_retryable
def handler(event: RetireInput, context: Any) -> RetireResult:
    if event.get("attach", {}).get("retired"):  # AttachSpot retired it and gave back the group in its section
        return {"done": True, "polls": 0, "lb_polls": 0, "wait_seconds": 0, "waiting_for": "", "restored": True}
    asg_name, on_demand_id, execution = event["asg_name"], event["instance_id"], event["execution_name"]
    last = event.get("retire", {})
    polls, lb_polls = int(last.get("polls", 0)) + 1, int(last.get("lb_polls", 0))

    def decide(group: Group) -> RetireDecision:
        health = group_health(group) if group.behind_load_balancer else None
        return retire_decision(
            group, on_demand_id=on_demand_id, spot_id=event["spot"]["spot_instance_id"], polls=polls,
            max_polls=int(event["group_max_polls"]), health=health, lb_polls=lb_polls + 1,
            lb_max_polls=int(event.get("lb_max_polls", 1)),
        )

    group = describe_group(asg_name)
    decision = decide(group)
    restored = False
    if decision.retire:
        section = begin_section(asg_name, execution, group)
        if section.group is not group:  # re-read under the lease: decide on what is there now
            decision = decide(section.group)
        if decision.retire:
            client("autoscaling").terminate_instance_in_auto_scaling_group(
                InstanceId=on_demand_id, ShouldDecrementDesiredCapacity=True)
            give = plan_give_back(section.group, section.found, [execution], desired_after=section.group.desired - 1)
            apply_give_back(asg_name, give, logger)
            section.release(give.record, dropped=[execution], claim_of=on_demand_id)
            restored = True
            logger.info("on-demand retired", extra={"asg": asg_name, "instance_id": on_demand_id})
            publish(ON_DEMAND_RETIRED, swap_detail(event))
        else:
            section.release(section.found)
    if decision.waiting_on_load_balancer:
        lb_polls += 1
    wait = int(event.get("lb_poll_seconds", 0) if decision.waiting_on_load_balancer else event["group_poll_seconds"])
    return {"done": decision.done, "polls": polls, "lb_polls": lb_polls, "wait_seconds": wait,
            "waiting_for": decision.why_waiting, "restored": restored}
