"""Group changes that compose: the per-group coordination record and the decisions made from it.

Concurrent executions change one group (swaps attach and retire, interruption fallbacks raise and release), and
AWS's group writes are absolute (UpdateAutoScalingGroup, SetDesiredCapacity), so two writers that read the same
group lose an update. Every change we make to a group therefore runs as a *section* under the group's lease in the
coordination record, and the record keeps what *we* changed, never snapshots of the user's values:

- `holds`: per execution, the MaxSize slots it added and whether it raised desired;
- `max_set_to`: the MaxSize we set while slots are out (a different MaxSize means someone else changed it: theirs
  stands); `suspended`: processes we suspended (a process suspended before us is never resumed by us);
- `left`: desired and MaxSize as the last section left them, so a read made before the lease can be trusted when
  it matches, and is made again under the lease when it does not.

A section records its plan when it takes the lease and applies it with idempotent writes, so a crashed section is
finished by its retry, and a crashed execution's holds are given back by the sweep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tasks.core.model import Group

SWAP_SUSPENDS = ("AZRebalance",)
HOLD_ATTRIBUTE = "hold#"  # one attribute per holding execution: `hold#<execution>`
LEASE_SECONDS = 60  # longer than a handler's AWS calls plus Step Functions' retry back-off after a crash


@dataclass(frozen=True)
class Hold:
    """What one execution added to the group: MaxSize slots and desired (interruption fallback)."""

    max_slots: int = 0
    desired: int = 0
    planned_max: int | None = None  # the MaxSize the section set (None: left alone)
    planned_desired: int | None = None  # the desired it set, absolutely (raise only)
    planned_suspend: tuple[str, ...] = ()  # the processes it suspended (none of them suspended before it)
    # The group read (made before the lease) the plan came from, so a retry can tell a plan its section never
    # confirmed under the lease from one it did (`unconfirmed`); None: planned from a read made under the lease.
    read_desired: int | None = None
    read_max: int | None = None


@dataclass(frozen=True)
class GroupRecord:
    asg_name: str
    lease_owner: str | None = None
    lease_until: float = 0.0
    holds: Mapping[str, Hold] = field(default_factory=dict)
    max_set_to: int | None = None
    suspended: frozenset[str] = frozenset()
    left_desired: int | None = None
    left_max: int | None = None
    # The processes suspended as the last section left the group (None: written before this was recorded). Desired
    # and MaxSize alone can come back to the values a stale read saw (A raises, B releases) while a suspension of
    # ours is out: the read would miss it, and the last give-back would leave AZRebalance suspended for good.
    left_suspended: frozenset[str] | None = None
    exists: bool = False

    def lease_free_for(self, execution: str, now: float) -> bool:
        return self.lease_owner in (None, execution) or self.lease_until <= now


@dataclass(frozen=True)
class Take:
    """A section's plan to add to the group: the writes (None/empty: leave) and the hold to record."""

    hold: Hold
    max_size: int | None
    desired: int | None
    suspend: tuple[str, ...]


@dataclass(frozen=True)
class GiveBack:
    """Give back what `leaving` executions added: the writes, the record after, and warnings to log."""

    max_size: int | None
    resume: tuple[str, ...]
    record: GroupRecord
    warnings: tuple[str, ...] = ()


def read_is_current(group: Group, before: GroupRecord) -> bool:
    """Whether a group read made before taking the lease can be trusted: no section of ours has changed the group
    since it (the record as the lease found it says how the last section left the group), or none ever did."""
    if before.exists and before.left_suspended is not None and group.suspended != before.left_suspended:
        return False
    return _left_as_read(group.desired, group.max_size, before)


def _left_as_read(desired: int, max_size: int, before: GroupRecord) -> bool:
    if not before.exists or before.left_desired is None:
        return True
    return (desired, max_size) == (before.left_desired, before.left_max)


def planned_from(take: Take, group: Group) -> Take:
    """The take with the read it was planned from, recorded with the lease (before it is known to be current)."""
    return replace(take, hold=replace(take.hold, read_desired=group.desired, read_max=group.max_size))


def confirmed(take: Take) -> Take:
    """The take planned from a read made (or found current) under the lease: a retry finishes it as recorded."""
    return replace(take, hold=replace(take.hold, read_desired=None, read_max=None))


def unconfirmed(recorded: Hold, found: GroupRecord, execution: str) -> bool:
    """Whether a retried section's recorded plan was made from a read that the lease then found stale, by an
    attempt that died before it planned again under the lease (the re-read failed or crashed), so before any
    write of its own: the retry plans again. Applying it would size the group from a stale read (a MaxSize raised
    to a stale MaxSize + 1 leaks a slot; a plan without a slot on a full group is refused by AttachInstances).

    Judged only while the lease is still the crashed attempt's: nobody else's section ran since, so the record's
    `left_*` are what that attempt's lease found. A section that released its lease confirmed its plan."""
    if found.lease_owner != execution or recorded.read_desired is None or recorded.read_max is None:
        return False
    return not _left_as_read(recorded.read_desired, recorded.read_max, found)


def unbalances(group: Group, zone: str) -> bool:
    """Whether one more instance in `zone` leaves the zones more than one apart: what AZRebalance would correct
    (launching elsewhere and terminating here) in the middle of the swap."""
    counts = group.zone_counts()
    counts[zone] = counts.get(zone, 0) + 1
    return max(counts.values()) - min(counts.values()) > 1


def plan_take(group: Group, *, raise_desired: bool, zone: str | None = None, defer_suspend: bool = False) -> Take:
    """One more instance for the group: an attach (`zone`: where the spot is) needs room for it; a raise
    (interruption) sets desired + 1. MaxSize grows by one only when the group is full; AZRebalance is suspended
    when the new instance would unbalance the zones (always, for a raise: the group picks the zone).

    `defer_suspend`: an attach whose on-demand may leave in the same section (the spot is in the on-demand's own
    zone, so the zones are back as they were two calls later, long before AZRebalance could act); the
    suspension is then made only if the on-demand stays after all (`late_suspension`)."""
    max_size = group.max_size + 1 if group.desired + 1 > group.max_size else None
    desired = group.desired + 1 if raise_desired else None
    unbalancing = zone is None or unbalances(group, zone)
    needed = SWAP_SUSPENDS if unbalancing and not defer_suspend else ()
    suspend = tuple(p for p in needed if p not in group.suspended)
    hold = Hold(max_slots=1 if max_size is not None else 0, desired=1 if raise_desired else 0,
                planned_max=max_size, planned_desired=desired, planned_suspend=suspend)
    return Take(hold, max_size, desired, suspend)


def late_suspension(before: Group, after: Group, zone: str, take: Take) -> Take | None:
    """The suspension `plan_take(defer_suspend=True)` left out, now that the on-demand stays (RetireOnDemand
    polls): judged on the group as it was before the attach; a process someone else suspended meanwhile is
    theirs. None: nothing to suspend. The take's hold grows by it (record it before making it)."""
    needed = SWAP_SUSPENDS if unbalances(before, zone) else ()
    missing = tuple(p for p in needed if p not in after.suspended and p not in take.hold.planned_suspend)
    if not missing:
        return None
    return Take(replace(take.hold, planned_suspend=take.hold.planned_suspend + missing), None, None, missing)


def retry_take(group: Group, hold: Hold) -> Take:
    """A retried section (its plan recorded, its writes maybe made): the writes still missing. Absolute writes are
    idempotent, so re-applying a value already in place is skipped and nothing is applied twice; a planned
    suspension the crashed attempt did not make yet is made now."""
    max_size = hold.planned_max if hold.planned_max is not None and group.max_size < hold.planned_max else None
    desired = hold.planned_desired
    if desired is not None and group.desired >= desired:
        desired = None
    return Take(hold, max_size, desired, tuple(p for p in hold.planned_suspend if p not in group.suspended))


def after_take(record: GroupRecord, execution: str, take: Take, group: Group, *, desired_after: int) -> GroupRecord:
    """The record once the section's writes are made (the lease is released with it). A retry of a section that
    already released (it died after its release) has its slot in `max_set_to` already: a MaxSize raised since by
    another section stays what we set, and the group as read now is how the section leaves it."""
    holds = {**record.holds, execution: take.hold}
    released_before = execution in record.holds and record.lease_owner != execution
    planned = take.hold.planned_max if take.hold.max_slots and not released_before else None
    left_suspended = frozenset(group.suspended) | frozenset(take.hold.planned_suspend)
    if released_before:
        return replace(record, lease_owner=None, lease_until=0.0, holds=holds, exists=True,
                       suspended=record.suspended | frozenset(take.hold.planned_suspend),
                       left_desired=desired_after, left_max=group.max_size, left_suspended=left_suspended)
    return replace(record, lease_owner=None, lease_until=0.0, holds=holds, exists=True,
                   max_set_to=planned if planned is not None else record.max_set_to,
                   suspended=record.suspended | frozenset(take.hold.planned_suspend),
                   left_desired=desired_after, left_max=planned if planned is not None else group.max_size,
                   left_suspended=left_suspended)


def plan_give_back(group: Group, record: GroupRecord, leaving: Iterable[str], *, desired_after: int | None = None
                   ) -> GiveBack:
    """Give back the slots `leaving` added, only if MaxSize is still what we set (else someone else changed it and
    theirs stands), and never below desired (someone else may have scaled out into our slot: desired is never
    lowered by us). The last hold out resumes what we suspended and someone else has not resumed already.

    A section that crashed after its writes but before releasing the lease left only its plan in the record (its
    hold): what it planned counts as what we set and suspended, and a give-back it already made (MaxSize already
    at the value we would set) is not made again, nor taken for someone else's change. A plan its section never
    confirmed (`unconfirmed`: it died before any write) gave nothing, so it gives nothing back."""
    desired = group.desired if desired_after is None else desired_after
    leaving = [e for e in leaving if e in record.holds]
    holds = {e: h for e, h in record.holds.items() if e not in leaving}
    made = {e: Hold() if unconfirmed(h, record, e) else h for e, h in record.holds.items()}
    slots = sum(made[e].max_slots for e in leaving)
    unfinished = made.get(record.lease_owner or "")  # its section wrote, then died holding the lease
    set_to = record.max_set_to
    if unfinished is not None and unfinished.max_slots and unfinished.planned_max is not None:
        set_to = max(set_to or 0, unfinished.planned_max)
    warnings: list[str] = []
    max_size: int | None = None
    max_set_to = record.max_set_to
    if slots and set_to is not None and group.max_size != set_to:
        if group.max_size != max(set_to - slots, desired):  # not our own earlier give-back: someone else's change
            warnings.append(f"ASG {group.name}: MaxSize is {group.max_size}, we set {set_to}; someone else "
                            f"changed it, so it stays (our {slots} slot(s) not taken back)")
        max_set_to = group.max_size
    elif slots:
        wanted = group.max_size - slots
        max_size = max(wanted, desired)
        if max_size > wanted:
            warnings.append(f"ASG {group.name}: MaxSize back to {max_size}, not {wanted}: desired is {desired}")
        max_set_to = max_size
    ours = record.suspended | frozenset(p for e in leaving for p in made[e].planned_suspend)
    resume: tuple[str, ...] = ()
    suspended = ours
    if not holds:
        resume = tuple(sorted(p for p in ours if p in group.suspended))
        suspended = frozenset()
        max_set_to = None
    if max_size == group.max_size:
        max_size = None
    new_max = max_size if max_size is not None else group.max_size
    after = replace(record, lease_owner=None, lease_until=0.0, holds=holds, max_set_to=max_set_to,
                    suspended=suspended, left_desired=desired, left_max=new_max,
                    left_suspended=frozenset(group.suspended) - frozenset(resume), exists=True)
    return GiveBack(max_size, resume, after, tuple(warnings))


def record_from_item(asg_name: str, item: Mapping[str, Any] | None) -> GroupRecord:
    """The record from its DynamoDB item (plain Python values, as boto3's TypeDeserializer gives them)."""
    if not item:
        return GroupRecord(asg_name)

    def number(key: str) -> int | None:
        value = item.get(key)
        return None if value is None else int(value)

    holds = {
        key[len(HOLD_ATTRIBUTE):]: Hold(int(h.get("max_slots", 0)), int(h.get("desired", 0)),
                                        None if h.get("planned_max") is None else int(h["planned_max"]),
                                        None if h.get("planned_desired") is None else int(h["planned_desired"]),
                                        tuple(h.get("planned_suspend") or ()),
                                        None if h.get("read_desired") is None else int(h["read_desired"]),
                                        None if h.get("read_max") is None else int(h["read_max"]))
        for key, h in item.items() if key.startswith(HOLD_ATTRIBUTE)
    }
    return GroupRecord(
        asg_name, lease_owner=item.get("lease_owner") or None, lease_until=float(item.get("lease_until", 0)),
        holds=holds, max_set_to=number("max_set_to"), suspended=frozenset(item.get("suspended") or ()),
        left_desired=number("left_desired"), left_max=number("left_max"), exists=True,
        left_suspended=None if item.get("left_suspended") is None else frozenset(item["left_suspended"]),
    )


def hold_fields(hold: Hold) -> dict[str, Any]:
    fields: dict[str, Any] = {k: v for k, v in vars(hold).items() if v is not None and k != "planned_suspend"}
    if hold.planned_suspend:
        fields["planned_suspend"] = list(hold.planned_suspend)
    return fields


def item_fields(record: GroupRecord) -> dict[str, Any]:
    """What a released record writes besides its holds (the lease is removed alongside)."""
    fields: dict[str, Any] = {"suspended": sorted(record.suspended)}
    if record.left_suspended is not None:
        fields["left_suspended"] = sorted(record.left_suspended)
    for key in ("max_set_to", "left_desired", "left_max"):
        value = getattr(record, key)
        if value is not None:
            fields[key] = value
    return fields


# --- The group's rollout claim: one rollout of a group at a time (docs/coordination.md#the-rollout-claim). A
# durable, conditional write, not "is another rollout in ListExecutions" (eventually consistent: two rollouts
# started together each miss the other).
ROLLOUT_CLAIM = "rollout"  # the record's attribute: {execution, since, expires}


@dataclass(frozen=True)
class RolloutClaim:
    execution: str
    since: int  # the rollout execution's start (epoch seconds)
    expires: int  # its start plus the rollout state machine's timeout: the execution cannot be running after it

    def fields(self) -> dict[str, Any]:
        return {"execution": self.execution, "since": self.since, "expires": self.expires}


def rollout_claim(execution: str, started: float, timeout_seconds: int) -> RolloutClaim:
    """The claim a rollout takes, dated from its execution's start (a retried Plan writes the same claim)."""
    return RolloutClaim(execution, int(started), int(started) + timeout_seconds)


def rollout_claim_from(item: Mapping[str, Any] | None) -> RolloutClaim | None:
    """The rollout claim in a group record's item (plain values), or None."""
    raw = (item or {}).get(ROLLOUT_CLAIM)
    if not isinstance(raw, Mapping) or not raw.get("execution"):
        return None
    return RolloutClaim(str(raw["execution"]), int(raw.get("since", 0)), int(raw.get("expires", 0)))
