"""What a swap changes on its group and how to put it back.

A swap "holds" the group while it runs: it may raise MaxSize by one (an attach needs room) and suspends
AZRebalance (so the group does not terminate instances to even out zones mid-swap). Each hold is an ASG tag
`AsgOptimiser:Hold:<execution>`; the group's values from before the first hold are kept in two more tags. The
last hold to leave restores those values, so parallel swaps on one group never restore under each other, and a
crashed execution leaves enough on the group for the sweep to repair it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.core.model import Group
from tasks.core.tags import HOLD_PREFIX, ORIGINAL_MAX_SIZE, ORIGINAL_SUSPENDED

SWAP_SUSPENDS = ("AZRebalance",)
_NONE = "-"


@dataclass(frozen=True)
class Prepare:
    """Tags to write (before any change, so a crash right after is repairable) and the changes to make."""

    tags: dict[str, str]
    new_max_size: int | None
    suspend: tuple[str, ...]


@dataclass(frozen=True)
class Restore:
    """Tags to delete and the settings to put back (None/empty: leave as is)."""

    delete_tags: tuple[str, ...]
    max_size: int | None
    desired: int | None
    resume: tuple[str, ...]


def hold_key(execution_name: str) -> str:
    return HOLD_PREFIX + execution_name


def holders(group: Group) -> list[str]:
    """Executions currently holding the group, from its tags."""
    return sorted(k[len(HOLD_PREFIX) :] for k in group.tags if k.startswith(HOLD_PREFIX))


def unbalances(group: Group, zone: str) -> bool:
    """Whether one more instance in `zone` leaves the zones more than one apart: what AZRebalance would correct
    (launching elsewhere and terminating here) in the middle of the swap."""
    counts = group.zone_counts()
    counts[zone] = counts.get(zone, 0) + 1
    return max(counts.values()) - min(counts.values()) > 1


def plan_prepare(group: Group, execution_name: str, zone: str | None = None) -> Prepare:
    """Make room for one more instance and suspend what would fight it; record originals first.

    With the `zone` the instance will join, AZRebalance is suspended only if that zone unbalances the group, and
    a group that needs no change and is held by no other swap is not held at all (nothing to restore).
    """
    new_max = group.max_size + 1 if group.desired + 1 > group.max_size else None
    needed = SWAP_SUSPENDS if zone is None or unbalances(group, zone) else ()
    suspend = tuple(p for p in needed if p not in group.suspended)
    if new_max is None and not suspend and not holders(group):
        # Nothing to change and nobody else's change to lean on: no hold. (While another swap holds the group,
        # this one may depend on its raised MaxSize, so it holds too and the last one out restores.)
        return Prepare(tags={}, new_max_size=None, suspend=())
    tags = {hold_key(execution_name): "held"}
    if not holders(group) or ORIGINAL_MAX_SIZE not in group.tags:
        tags[ORIGINAL_MAX_SIZE] = str(group.max_size)
        tags[ORIGINAL_SUSPENDED] = ",".join(sorted(group.suspended)) or _NONE
    return Prepare(tags=tags, new_max_size=new_max, suspend=suspend)


def _originals(group: Group) -> tuple[int | None, frozenset[str] | None]:
    raw_max = group.tags.get(ORIGINAL_MAX_SIZE)
    raw_suspended = group.tags.get(ORIGINAL_SUSPENDED)
    max_size = int(raw_max) if raw_max is not None and raw_max.isdigit() else None
    if raw_suspended is None:
        return max_size, None
    suspended = frozenset() if raw_suspended == _NONE else frozenset(filter(None, raw_suspended.split(",")))
    return max_size, suspended


def plan_restore(group: Group, leaving: list[str]) -> Restore:
    """Release the holds of `leaving`; when no hold remains, put the recorded originals back.

    If a scale-out used our raised MaxSize meanwhile, desired comes back down to the user's own maximum.
    """
    remaining = [h for h in holders(group) if h not in leaving]
    delete = tuple(hold_key(h) for h in leaving if hold_key(h) in group.tags)
    if remaining:
        return Restore(delete_tags=delete, max_size=None, desired=None, resume=())
    original_max, original_suspended = _originals(group)
    delete += tuple(k for k in (ORIGINAL_MAX_SIZE, ORIGINAL_SUSPENDED) if k in group.tags)
    max_size = original_max if original_max is not None and original_max != group.max_size else None
    desired = original_max if original_max is not None and group.desired > original_max else None
    resume: tuple[str, ...] = ()
    if original_suspended is not None:
        resume = tuple(p for p in SWAP_SUSPENDS if p in group.suspended and p not in original_suspended)
    return Restore(delete_tags=delete, max_size=max_size, desired=desired, resume=resume)
