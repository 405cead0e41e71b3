"""What the sweep cleans up, decided from plain facts: spots we launched that nothing owns any more, groups a
crashed execution left holding (raised MaxSize, suspended AZRebalance: its holds in the coordination record), and
instance claims whose execution has ended."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime

from tasks.core.coordination import GroupRecord, RolloutClaim
from tasks.core.model import Instance
from tasks.core.selection import launched_at
from tasks.core.tags import EXECUTION, REPLACES


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


def stale_holders(record: GroupRecord, running: Collection[str]) -> list[str]:
    """Executions whose holds on the group outlived them (the record was read before the executions were listed,
    so an execution that started after the listing holds nothing in it)."""
    return sorted(h for h in record.holds if h not in running)


def stale_claims(claims: Sequence[tuple[str, str, float]], running: Collection[str], now: float,
                 min_age_seconds: float) -> list[tuple[str, str]]:
    """(instance id, execution) for each claim whose execution is no longer running, of those older than
    `min_age_seconds`: ListExecutions is eventually consistent, so a claim just made may belong to an execution
    the listing does not show yet."""
    return [(instance_id, execution) for instance_id, execution, at in claims
            if execution not in running and at <= now - min_age_seconds]


def stale_rollout_claim(claim: RolloutClaim, running: Collection[str], now: float, min_age_seconds: float) -> bool:
    """A group's rollout claim that no running rollout holds: expired (its execution's timeout has passed), or
    its rollout not RUNNING and the claim older than `min_age_seconds` (a rollout just started may be missing from
    the eventually consistent listing). A rollout stopped from outside (StopExecution, a timeout, a failed Lambda)
    runs no Catch, so this is how its claim goes."""
    if claim.expires <= now:
        return True
    return claim.execution not in running and claim.since <= now - min_age_seconds
