"""AttachSpot: one section under the group's lease (tasks.core.coordination): make room if the group is full
(MaxSize + 1), attach the ready spot (desired + 1), and, when the spot is InService at once, retire the
on-demand through the group (desired - 1) and give back what the section took, all before any other execution
changes the group. Otherwise RetireOnDemand polls, and AZRebalance is suspended first if the spot's zone
unbalances the group (behind load balancers, where the on-demand always waits, before the attach).

Behind load balancers the on-demand always waits for RetireOnDemand (the spot must be healthy first). Refuses,
changing nothing, if the on-demand already left the group. A retry after a crash finds its recorded plan
and the spot a member, and makes no write twice.
"""

from __future__ import annotations

from typing import Any

from tasks.aws.clients import client
from tasks.aws.coordination import begin_section, take_lease
from tasks.aws.group_writes import apply_give_back, apply_take
from tasks.aws.groups import describe_group
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.aws.swap_events import publish
from tasks.core.coordination import after_take, late_suspension, plan_give_back, plan_take
from tasks.core.errors import OnDemandGone
from tasks.core.readiness import retire_now
from tasks.core.steps import AttachResult, AttachSpotInput
from tasks.core.swap_events import ON_DEMAND_RETIRED, SPOT_ATTACHED, swap_detail


@logged_metered_retryable
def handler(event: AttachSpotInput, context: Any) -> AttachResult:
    spot_id, asg_name, on_demand_id, execution = (event["spot"]["spot_instance_id"], event["asg_name"],
                                                  event["instance_id"], event["execution_name"])
    group = describe_group(asg_name)
    member = group.member(on_demand_id)
    if member is None or not member.in_service:
        if group.member(spot_id) is not None:
            # A retry after a crash that followed this section's terminate: the spot serves and the on-demand
            # leaves, but the section's give-back and release may not have run. `retired: False` sends the
            # workflow on to RetireOnDemand (done at once) and RestoreGroup, which gives back under our lease.
            return {"attached": spot_id, "held": True, "retired": False, "raised_max_to": 0, "suspended": ""}
        state = member.lifecycle_state if member else "gone"
        raise OnDemandGone(f"on-demand {on_demand_id} is {state} in ASG {group.name}; not attaching")
    zone, defer = event["availability_zone"], not group.behind_load_balancer  # LB: the on-demand always waits
    section = begin_section(asg_name, execution, group,
                            lambda g: plan_take(g, raise_desired=False, zone=zone, defer_suspend=defer))
    assert section.take is not None
    before = section.group
    apply_take(asg_name, section.take)
    if before.member(spot_id) is None:
        client("autoscaling").attach_instances(AutoScalingGroupName=asg_name, InstanceIds=[spot_id])
    attached = section.reread()
    retired = retire_now(attached, on_demand_id=on_demand_id, spot_id=spot_id)
    late = late_suspension(before, attached, zone, section.take) if defer and not retired else None
    if late is not None:  # the on-demand stays for now: AZRebalance must not correct the zones under the swap
        take_lease(asg_name, execution, None, hold_now=late.hold)  # the plan first, so a crash is finished
        apply_take(asg_name, late)
        section.take = late
    took = after_take(section.found, execution, section.take, attached, desired_after=attached.desired)
    if retired:
        client("autoscaling").terminate_instance_in_auto_scaling_group(
            InstanceId=on_demand_id, ShouldDecrementDesiredCapacity=True)
        give = plan_give_back(attached, took, [execution], desired_after=attached.desired - 1)
        apply_give_back(asg_name, give, logger)
        section.release(give.record, dropped=[execution], claim_of=on_demand_id)
    else:
        section.release(took)
    logger.info("spot attached", extra={"asg": asg_name, "spot_instance_id": spot_id, "retired": retired,
                                        "new_max_size": section.take.hold.planned_max,
                                        "suspended": section.take.hold.planned_suspend})
    also = [(ON_DEMAND_RETIRED, swap_detail(event))] if retired else []
    publish(SPOT_ATTACHED, swap_detail(event, launch_hooks_skipped=True), *also)
    return {"attached": spot_id, "held": True, "retired": retired, "raised_max_to": section.take.hold.planned_max or 0,
            "suspended": ",".join(section.take.hold.planned_suspend)}
