"""Poll decisions: is the spot ready, and may the on-demand leave the group yet."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.core.errors import GroupNotReady, OnDemandGone, SpotNotReady
from tasks.core.model import Group

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
            f"spot {instance_id} not ready after {polls} polls (state {state}, instance {instance_check}, "
            f"system {system_check})"
        )
    return WAITING


@dataclass(frozen=True)
class RetireDecision:
    retire: bool  # call TerminateInstanceInAutoScalingGroup (decrementing desired) now
    done: bool  # the on-demand is leaving or gone and the spot serves: the swap is complete
    why_waiting: str = ""


LEAVING = ("Terminating", "Detaching", "Detached")


def retire_decision(group: Group, *, on_demand_id: str, spot_id: str, polls: int, max_polls: int) -> RetireDecision:
    """Retire the on-demand only while the spot is InService and the group keeps desired in service without it.

    A retry after a crash that followed our terminate call finds the on-demand already leaving: done, no
    second call.
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
    if not spot.in_service:
        why = f"spot {spot_id} is {spot.lifecycle_state}, not yet InService"
    elif group.in_service_count - 1 < group.desired - 1:
        why = f"ASG {group.name} has {group.in_service_count} InService for desired {group.desired}"
    else:
        return RetireDecision(retire=True, done=True)
    if polls >= max_polls:
        raise GroupNotReady(f"gave up after {polls} polls: {why}")
    return RetireDecision(retire=False, done=False, why_waiting=why)
