"""Whether one on-demand instance may be swapped now: the checks Validate runs before anything changes."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime

from tasks.core.errors import (
    InstanceNotEligible,
    InvalidInput,
    MalformedPolicy,
    NotOptedIn,
    OnDemandFloor,
    OutsideWindow,
    SwapInFlight,
)
from tasks.core.model import Group, Instance
from tasks.core.policy import Policy, PolicyError, parse_policy
from tasks.core.selection import ACTIVE_STATES
from tasks.core.tags import MIN_ON_DEMAND, MIN_ON_DEMAND_PERCENT, OPT_IN, WINDOW, is_opted_in

REASONS = ("scheduled", "event", "manual", "interruption", "rollout", "rebalance", "commitment")
SPOT, ON_DEMAND = "spot", "on-demand"
MARKETS = (SPOT, ON_DEMAND)
_INSTANCE_TYPE = re.compile(r"[a-z0-9][a-z0-9-]*\.[a-z0-9-]+")


def check_reason(reason: object) -> str:
    if reason not in REASONS:
        raise InvalidInput(f"reason must be one of {', '.join(REASONS)}, got {reason!r}")
    return str(reason)


# Reasons whose swap takes an on-demand out of the group now, so the floor and the window apply; a rebalance
# swaps a spot for a spot (the on-demand count does not change) and answers an AWS signal that will not wait.
# A replacement of market on-demand never lowers the on-demand count either (see `takes_on_demand_away`).
FLOOR_AND_WINDOW_REASONS = ("scheduled", "event", "manual", "rollout")


def takes_on_demand_away(reason: str, market: str) -> bool:
    """Whether the floor and the window apply: the swap replaces an on-demand with a spot for one of the
    reasons above. A commitment swap-back or an on-demand rollout keeps (or adds) on-demand capacity."""
    return reason in FLOOR_AND_WINDOW_REASONS and market == SPOT


def check_market(market: object, reason: str) -> str:
    """The market of the replacement: `spot` (the default) or `on-demand`. A swap back for an idle commitment
    (reason `commitment`) only makes sense on-demand."""
    if market not in MARKETS:
        raise InvalidInput(f"market must be one of {', '.join(MARKETS)}, got {market!r}")
    if reason == "commitment" and market != ON_DEMAND:
        raise InvalidInput(f"reason 'commitment' replaces with an on-demand instance: market must be {ON_DEMAND!r}")
    return str(market)


def check_instance_type(instance_type: object) -> str | None:
    """An on-demand replacement's type (None: the replaced instance's own); a name like `m5.large`."""
    if instance_type is None:
        return None
    if not isinstance(instance_type, str) or not _INSTANCE_TYPE.fullmatch(instance_type):
        raise InvalidInput(f"instance_type must be an instance type name such as 'm5.large', got {instance_type!r}")
    return instance_type


def check_swappable(group: Group, instance: Instance | None, instance_id: str, *, allow_spot: bool = False) -> None:
    """Raise the first reason the swap must not start; the messages name the group and instance.
    Opt-in is always required: the deployed IAM lets the functions change only opted-in groups, so no flag could
    make a swap elsewhere work in an account. `allow_spot=True` only for a rebalance recommendation (a spot
    replaced by a spot from another pool)."""
    if not is_opted_in(group.tags):
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


def check_claimed(instance_id: str, holder: str | None) -> None:
    """`holder`: the execution whose claim on the instance stood against ours (None: the claim is ours)."""
    if holder is not None:
        raise SwapInFlight(f"instance {instance_id} is already being replaced by execution {holder}")


def policy_of(group: Group) -> Policy:
    """The group's policy, or MalformedPolicy naming the tag and value."""
    try:
        return parse_policy(group.name, group.tags, default_grace_period=group.health_check_grace_period)
    except PolicyError as error:
        raise MalformedPolicy(str(error)) from None


def on_demand_kept(group: Group, spot_ids: Collection[str], being_replaced: Collection[str]) -> list[str]:
    """The group's on-demand instances that stay unless swapped: active members not known to be spot (unknown
    counts as on-demand: keeps more, never fewer) and not already being swapped out."""
    return [m.instance_id for m in group.members if m.lifecycle_state in ACTIVE_STATES
            and m.instance_id not in spot_ids and m.instance_id not in being_replaced]


def check_floor_and_window(group: Group, policy: Policy, instance_id: str, spot_ids: Collection[str],
                           being_replaced: Collection[str], now: datetime) -> None:
    """Refuse a swap outside the group's window, or one that would leave fewer on-demand instances than its
    floor (also when the group is below its floor already: a swap never takes it further below)."""
    if not policy.in_window(now):
        raise OutsideWindow(f"ASG {group.name} is outside its window: {WINDOW}={group.tags.get(WINDOW)!r} allows "
                            f"{policy.window}, now {now.astimezone(UTC):%H:%M} UTC")
    floor = policy.on_demand_floor(group.desired)
    kept = on_demand_kept(group, spot_ids, being_replaced)
    left = len(kept) - (1 if instance_id in kept else 0)
    if left < floor:
        raise OnDemandFloor(
            f"ASG {group.name} keeps {floor} on-demand ({MIN_ON_DEMAND}={policy.min_on_demand}, "
            f"{MIN_ON_DEMAND_PERCENT}={policy.min_on_demand_percent} of desired {group.desired}) and has {len(kept)} "
            f"not being replaced: replacing {instance_id} would leave {left}"
        )
