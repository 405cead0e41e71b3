"""Whether one on-demand instance may be swapped now: the checks Validate runs before anything changes."""

from __future__ import annotations

from tasks.core.errors import InstanceNotEligible, InvalidInput, NotOptedIn, SwapInFlight
from tasks.core.model import Group, Instance
from tasks.core.tags import OPT_IN, is_opted_in

REASONS = ("scheduled", "event", "manual", "interruption", "rollout", "rebalance")


def check_reason(reason: object) -> str:
    if reason not in REASONS:
        raise InvalidInput(f"reason must be one of {', '.join(REASONS)}, got {reason!r}")
    return str(reason)


def check_swappable(group: Group, instance: Instance | None, instance_id: str, *, require_opt_in: bool = True,
                    allow_spot: bool = False) -> None:
    """Raise the first reason the swap must not start; the messages name the group and instance.
    `require_opt_in=False` only for an operator's explicit `replace --force` on a group that is not opted in;
    `allow_spot=True` only for a rebalance recommendation (a spot replaced by a spot from another pool)."""
    if require_opt_in and not is_opted_in(group.tags):
        value = group.tags.get(OPT_IN)
        shown = "missing" if value is None else repr(value)
        raise NotOptedIn(f"ASG {group.name} is not opted in: tag {OPT_IN} is {shown}, expected 'true'")
    member = group.member(instance_id)
    if member is None:
        raise InstanceNotEligible(f"instance {instance_id} is not a member of ASG {group.name}")
    if member.lifecycle_state != "InService":
        raise InstanceNotEligible(
            f"instance {instance_id} in ASG {group.name} is {member.lifecycle_state}, not InService"
        )
    if member.protected:
        raise InstanceNotEligible(f"instance {instance_id} in ASG {group.name} is protected from scale-in")
    if instance is None or instance.state != "running":
        state = "gone" if instance is None else instance.state
        raise InstanceNotEligible(f"instance {instance_id} is {state}, not running")
    if not instance.on_demand and not allow_spot:
        raise InstanceNotEligible(f"instance {instance_id} is {instance.lifecycle}, not on-demand")
    if not (group.launch_template_id or group.launch_template_name):
        raise InstanceNotEligible(
            f"ASG {group.name} has no launch template (launch configurations are not supported)"
        )


def check_not_in_flight(instance_id: str, own_name: str, own_start: float, running: list[tuple[str, float]]) -> None:
    """`running` holds (name, start time) of RUNNING executions for this instance, ourselves included.

    Two executions started together each see the other; the earliest (then the smallest name) proceeds,
    so exactly one of them wins without any lock.
    """
    rivals = [(start, name) for name, start in running if name != own_name]
    if any((start, name) < (own_start, own_name) for start, name in rivals):
        first = min(rivals)[1]
        raise SwapInFlight(f"instance {instance_id} is already being replaced by execution {first}")
