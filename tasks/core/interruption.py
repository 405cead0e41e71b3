"""The spot interruption fallback, decided from plain facts.

On the two-minute warning the group gets one more instance at once (desired + 1, launched on-demand from its own
template), and the doomed spot leaves through the group with decrement as soon as that replacement is InService
(behind load balancers: healthy in every one), or at the deadline, whichever comes first. The deadline is the
two-minute mark less a margin, or behind load balancers less the longest deregistration delay (capped: see
tasks.core.load_balancing.release_by), so the spot drains before EC2 takes it. Until then the
doomed spot still serves, so in-service never drops below the user's desired capacity because of us.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tasks.core.errors import InvalidInput
from tasks.core.load_balancing import Health, release_by, serving_ids
from tasks.core.model import Group
from tasks.core.readiness import LEAVING
from tasks.core.tags import is_opted_in
from tasks.core.timing import MIN_POLL_SECONDS

INTERRUPTION_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE_RECOMMENDATION = "EC2 Instance Rebalance Recommendation"
NOTICE_SECONDS = 120
# Terminating through the group deregisters the spot from its load balancers first; start that this long before
# EC2 reclaims the instance, so connections drain instead of being cut.
RELEASE_MARGIN_SECONDS = 20
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")


@dataclass(frozen=True)
class SpotEvent:
    detail_type: str
    instance_id: str
    time: datetime


def parse_spot_event(event: dict[str, Any]) -> SpotEvent:
    """The EventBridge event as facts; anything else is refused naming the bad value."""
    detail_type = event.get("detail-type")
    if event.get("source") != "aws.ec2" or detail_type not in (INTERRUPTION_WARNING, REBALANCE_RECOMMENDATION):
        raise InvalidInput(f"not a spot warning: source {event.get('source')!r}, detail-type {detail_type!r}")
    instance_id = (event.get("detail") or {}).get("instance-id")
    if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
        raise InvalidInput(f"detail.instance-id must be an instance id, got {instance_id!r}")
    try:
        at = datetime.fromisoformat(str(event.get("time", "")).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"time must be an ISO 8601 timestamp, got {event.get('time')!r}") from None
    return SpotEvent(str(detail_type), instance_id, at)


def release_deadline(warned_at: float, notice_seconds: int = NOTICE_SECONDS,
                     margin_seconds: int = RELEASE_MARGIN_SECONDS, drain_seconds: int = 0) -> float:
    """Epoch seconds by which the doomed spot leaves the group, whether or not the replacement is in service;
    behind load balancers, early enough to drain (tasks.core.load_balancing.release_by)."""
    return release_by(warned_at, notice_seconds, drain_seconds, margin_seconds)


def poll_seconds(notice_seconds: int) -> int:
    """How often to look for the replacement: a dozen looks within the notice, at most every 5 s, never more often
    than the 2 s minimum poll interval (tasks.core.timing)."""
    return max(MIN_POLL_SECONDS, min(5, notice_seconds // 12))


def raise_refusal(group: Group, spot_id: str) -> str | None:
    """Why there is nothing to replace (the group is not opted in, the spot already leaving), or None."""
    if not is_opted_in(group.tags):
        return f"ASG {group.name} is not opted in"
    spot = group.member(spot_id)
    if spot is None or spot.lifecycle_state.startswith(LEAVING):
        return f"spot {spot_id} is {spot.lifecycle_state if spot else 'not a member'} in ASG {group.name}"
    return None


@dataclass(frozen=True)
class Release:
    terminate_spot: bool  # TerminateInstanceInAutoScalingGroup with decrement
    lower_desired_to: int | None  # the spot left without decrement (EC2 took it): undo our raise (one less)
    done: bool
    why: str


def release_decision(group: Group, *, spot_id: str, now: float, deadline: float,
                     health: Health | None = None) -> Release:
    """Behind load balancers (`health` given) the replacement counts once it is healthy in every one of them."""
    spot = group.member(spot_id)
    if spot is None:
        return Release(False, group.desired - 1, True, f"spot {spot_id} already left ASG {group.name}")
    if spot.lifecycle_state.startswith(LEAVING):
        return Release(False, None, True, f"spot {spot_id} is {spot.lifecycle_state}")
    health = health if group.behind_load_balancer else None
    serving = len(serving_ids(group, health)) if health is not None else group.in_service_count
    what = "healthy behind the load balancers" if health is not None else "in service"
    if serving >= group.desired:
        return Release(True, None, True, f"replacement {what} ({serving}/{group.desired})")
    if now >= deadline:
        return Release(True, None, True, f"deadline: {serving} {what} for desired {group.desired}")
    return Release(False, None, False, f"{serving} {what} for desired {group.desired}")
