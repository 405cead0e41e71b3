"""ReleaseSpot (spot interruption, polled): once the replacement is InService (behind load balancers: healthy in
every one of them), or at the deadline, the doomed spot leaves through the group with decrement, so draining and
termination hooks run and our raise is undone. If EC2 already took the spot (the group then keeps desired),
desired comes back down by one. Either way in one section under the group's lease that also gives back what
RaiseCapacity took (tasks.core.coordination)."""

from __future__ import annotations

from typing import Any

from tasks.aws import clock
from tasks.aws.clients import client
from tasks.aws.coordination import begin_section
from tasks.aws.group_writes import apply_give_back
from tasks.aws.groups import describe_group
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.aws.load_balancers import group_health
from tasks.aws.swap_events import publish
from tasks.core.coordination import plan_give_back
from tasks.core.interruption import release_decision
from tasks.core.steps import ReleaseResult, ReleaseSpotInput
from tasks.core.swap_events import INTERRUPTION_HANDLED


@logged_metered_retryable
def handler(event: ReleaseSpotInput, context: Any) -> ReleaseResult:
    asg_name, spot_id, execution = event["asg_name"], event["instance_id"], event["execution_name"]
    polls, deadline = int(event.get("release", {}).get("polls", 0)) + 1, float(event["deadline"])
    group = describe_group(asg_name)
    spot = group.member(spot_id)
    health = group_health(group) if group.behind_load_balancer else None
    decision = release_decision(group, spot_id=spot_id, now=clock.now(), deadline=deadline, health=health)
    if not decision.done:
        return {"done": False, "polls": polls, "why": decision.why, "restored": False}
    section = begin_section(asg_name, execution, group)
    if section.group is not group:  # re-read under the lease: decide on what is there now
        health = group_health(section.group) if section.group.behind_load_balancer else None
        decision = release_decision(section.group, spot_id=spot_id, now=clock.now(), deadline=deadline, health=health)
    if not decision.done:
        section.release(section.found)
        return {"done": False, "polls": polls, "why": decision.why, "restored": False}
    ours = section.found.holds.get(execution)
    desired = section.group.desired
    if decision.terminate_spot:
        client("autoscaling").terminate_instance_in_auto_scaling_group(
            InstanceId=spot_id, ShouldDecrementDesiredCapacity=True)
        desired -= 1
    elif decision.lower_desired_to is not None and ours is not None and ours.desired:
        client("autoscaling").set_desired_capacity(AutoScalingGroupName=asg_name,
                                                   DesiredCapacity=decision.lower_desired_to)
        desired = decision.lower_desired_to
    give = plan_give_back(section.group, section.found, [execution], desired_after=desired)
    apply_give_back(asg_name, give, logger)
    section.release(give.record, dropped=[execution])
    logger.info("doomed spot released", extra={"asg": asg_name, "spot_instance_id": spot_id, "why": decision.why,
                                               "polls": polls})
    publish(INTERRUPTION_HANDLED, {
        "asg_name": asg_name, "execution_name": execution, "reason": "interruption",
        "interrupted_instance_id": spot_id, "availability_zone": spot.availability_zone if spot else None,
        "why": decision.why, "released_at": clock.now(), "deadline": deadline,
    })
    return {"done": True, "polls": polls, "why": decision.why, "restored": True}
