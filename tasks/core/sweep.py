"""What the sweep cleans up, decided from plain facts: spots we launched that nothing owns any more, and groups a
crashed execution left holding (raised MaxSize, suspended AZRebalance)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime

from tasks.core.holds import holders
from tasks.core.model import Group, Instance
from tasks.core.selection import launched_at
from tasks.core.tags import EXECUTION, ORIGINAL_MAX_SIZE, ORIGINAL_SUSPENDED, REPLACES


def _unowned(spots: Sequence[Instance], members: Mapping[str, str], running: Collection[str],
             now: datetime) -> Iterator[tuple[Instance, str, int | None]]:
    """(spot, its execution, age in seconds or None) for each live spot of ours in no ASG whose execution is
    not RUNNING."""
    for spot in spots:
        if spot.instance_id in members or spot.state not in ("pending", "running", "stopping", "stopped"):
            continue
        execution = spot.tags.get(EXECUTION, "")
        if execution in running:
            continue
        launched = launched_at(spot)
        yield spot, execution, int((now - launched).total_seconds()) if launched else None


def orphaned_spots(spots: Sequence[Instance], members: Mapping[str, str], running: Collection[str],
                   now: datetime, older_than_seconds: int) -> list[tuple[str, str]]:
    """(instance id, why) for each spot tagged as ours that is in no ASG, older than the bound, and whose
    execution is not RUNNING. Anything younger may be a spot whose execution has not attached it yet."""
    return [(spot.instance_id, f"spot for {spot.tags.get(REPLACES, '?')} launched {age}s ago by execution "
                               f"{execution or '?'}, in no ASG, execution not running")
            for spot, execution, age in _unowned(spots, members, running, now)
            if age is not None and age >= older_than_seconds]


def young_unowned_spots(spots: Sequence[Instance], members: Mapping[str, str], running: Collection[str],
                        now: datetime, older_than_seconds: int) -> list[tuple[str, str]]:
    """(instance id, why) for each spot the sweep saw unowned but left: too young to be judged an orphan yet
    (or of unknown age), so an operator is not left wondering why a spot in no group survived a sweep."""
    return [(spot.instance_id,
             f"spot for {spot.tags.get(REPLACES, '?')} by execution {execution or '?'}, in no ASG, "
             + (f"launched {age}s ago: terminated once older than {older_than_seconds}s if still in no ASG"
                if age is not None else "launch time unknown: left alone"))
            for spot, execution, age in _unowned(spots, members, running, now)
            if age is None or age < older_than_seconds]


def stale_holds(group: Group, running: Collection[str]) -> list[str] | None:
    """Executions whose hold on the group outlived them, or None when the group needs no repair. An empty list
    means originals recorded with no hold left: put them back all the same."""
    stale = [h for h in holders(group) if h not in running]
    if stale:
        return stale
    has_originals = ORIGINAL_MAX_SIZE in group.tags or ORIGINAL_SUSPENDED in group.tags
    return [] if has_originals and not holders(group) else None


def still_stale(fresh: Group, stale: list[str]) -> list[str] | None:
    """Re-check `stale` (from a read made before the executions were listed) against a read made just now.

    Only holds that already existed before the listing can be judged by it: a hold that appeared since may
    belong to a swap that started after the listing. So release just the stale holds still present, and put
    originals back only if no hold at all has appeared meanwhile."""
    if stale:
        present = [h for h in stale if h in holders(fresh)]
        return present or None
    return stale_holds(fresh, ()) if not holders(fresh) else None
