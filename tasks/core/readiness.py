"""Poll decisions: is the spot ready, and may the on-demand leave the group yet."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.core.errors import GroupNotReady, OnDemandGone, SpotNotHealthy, SpotNotReady
from tasks.core.load_balancing import Health, not_serving, serving_ids
from tasks.core.model import Group
from tasks.core.plural import counted

READY, WAITING = "ready", "waiting"


def spot_readiness(
    *, instance_id: str, state: str | None, instance_check: str | None, system_check: str | None,
    polls: int, max_polls: int,
) -> str:
    """`ready` once running with both status checks ok; raise when it can never get there or time is up."""
    if state in (None, "shutting-down", "terminated", "stopping", "stopped"):
        raise SpotNotReady(f"spot {instance_id} is {state or 'gone'} before passing its status checks")
    if "impaired" in (instance_check, system_check):
        raise SpotNotReady(
            f"spot {instance_id} failed its status checks (instance {instance_check}, system {system_check})"
        )
    if state == "running" and instance_check == "ok" and system_check == "ok":
        return READY
    if polls >= max_polls:
        raise SpotNotReady(
            f"spot {instance_id} not ready after {counted(polls, 'poll')} (state {state}, instance {instance_check}, "
            f"system {system_check})"
        )
    return WAITING


@dataclass(frozen=True)
class RetireDecision:
    retire: bool  # call TerminateInstanceInAutoScalingGroup (decrementing desired) now
    done: bool  # the on-demand is leaving or gone and the spot serves: the swap is complete
    why_waiting: str = ""
    waiting_on_load_balancer: bool = False  # the wait counts against lb_max_polls, not group_max_polls


LEAVING = ("Terminating", "Detaching", "Detached")


def retire_decision(group: Group, *, on_demand_id: str, spot_id: str, polls: int, max_polls: int,
                    health: Health | None = None, lb_polls: int = 0, lb_max_polls: int = 1) -> RetireDecision:
    """Retire the on-demand only while the spot serves and the group keeps desired serving without it.

    Serving = InService in the group and, for a group behind load balancers (`health` given), healthy in every
    target group and InService in every classic ELB; the group's count is then of serving members too. A retry
    after a crash that followed our terminate call finds the on-demand already leaving: done, no second call.
    """
    spot = group.member(spot_id)
    if spot is None:
        raise GroupNotReady(f"spot {spot_id} is no longer a member of ASG {group.name}")
    on_demand = group.member(on_demand_id)
    if on_demand is None or on_demand.lifecycle_state.startswith(LEAVING):
        if spot.in_service:
            return RetireDecision(retire=False, done=True)
        state = on_demand.lifecycle_state if on_demand else "gone"
        raise OnDemandGone(f"on-demand {on_demand_id} is {state} in ASG {group.name} before the spot serves")
    if not on_demand.in_service:
        raise OnDemandGone(f"on-demand {on_demand_id} is {on_demand.lifecycle_state} in ASG {group.name}")
    health = health if group.behind_load_balancer else None
    unhealthy = not_serving(health, spot_id) if health is not None else None
    serving = len(serving_ids(group, health)) if health is not None else group.in_service_count
    if not spot.in_service:
        why = f"spot {spot_id} is {spot.lifecycle_state}, not yet InService"
    elif unhealthy:
        if lb_polls >= lb_max_polls:
            raise SpotNotHealthy(f"spot never healthy behind the load balancers after {lb_polls} polls: {unhealthy}")
        return RetireDecision(retire=False, done=False, why_waiting=f"spot {unhealthy}", waiting_on_load_balancer=True)
    elif serving - 1 < group.desired - 1:
        what = "serving behind its load balancers" if health is not None else "InService"
        why = f"ASG {group.name} has {serving} {what} for desired {group.desired}"
    else:
        return RetireDecision(retire=True, done=True)
    if polls >= max_polls:
        raise GroupNotReady(f"gave up after {counted(polls, 'poll')}: {why}")
    return RetireDecision(retire=False, done=False, why_waiting=why)


def retire_now(group: Group, *, on_demand_id: str, spot_id: str) -> bool:
    """Whether the on-demand may leave right after the attach, in the same section (the spot is InService at
    once and the group keeps desired in service without it); otherwise RetireOnDemand polls. Never behind load
    balancers: a target just registered is `initial` until its health checks pass (interval x threshold)."""
    if group.behind_load_balancer:
        return False
    try:
        return retire_decision(group, on_demand_id=on_demand_id, spot_id=spot_id, polls=0, max_polls=1).retire
    except (GroupNotReady, OnDemandGone):
        return False
