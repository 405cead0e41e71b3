"""Reverse swaps: when a commitment has sat idle long enough, replace spot instances of opted-in groups with
on-demand instances that the idle commitment wholly pays for. Pure: a coverage ledger and spot facts in, picks out.

Hysteresis, so a swap back never flaps with the forward swaps:
- a commitment must have been idle on every scan for `min_idle_seconds` (the store keeps when it was first seen
  idle; a scan that finds it used again forgets it);
- the new on-demand must be wholly covered by what is idle (partial cover is no reason to leave spot), and once
  launched it is covered, so the forward path keeps it (the same ledger decides both directions);
- no reverse swap starts while one is in flight (account-wide) or while the group has any swap in flight, and at
  most `max_per_scan` start per scan; the churned spot is claimed in the cooldown store like any churn;
- none starts into an on-demand pool (type and zone) that is cooling: a swap back that found no on-demand
  capacity there cools it (tasks/launch_on_demand.py), so the next scans do not retry it until the cooldown ends.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from tasks.core.commitments import OPTED_IN, Coverage, Usage, short_id
from tasks.core.model import Group, Instance
from tasks.core.policy import PolicyError, parse_policy
from tasks.core.prices import Pool
from tasks.core.tags import is_opted_in

MIN_IDLE_SECONDS = 15 * 60
IDLE_KEY_PREFIX = "idle#"


@dataclass(frozen=True)
class SpotFact:
    """A spot instance of an opted-in group that uses commitments, and the on-demand type it could become."""

    instance_id: str
    asg_name: str
    instance_type: str  # the type the on-demand replacement would be (the spot's own)
    availability_zone: str
    on_demand_price: float
    platform: str
    launch_time: str = ""


@dataclass(frozen=True)
class ReversePick:
    asg_name: str
    instance_id: str
    instance_type: str
    why: str


@dataclass(frozen=True)
class ReverseSkip:
    asg_name: str
    instance_id: str
    why: str


def spot_facts(groups: Iterable[Group], instances: Mapping[str, Instance], prices: Mapping[str, float],
               skipped: Collection[str] = ()) -> list[SpotFact]:
    """The InService, running spots of opted-in groups whose policy uses commitments (and that the scan did not
    skip: outside the window, scaling, malformed...), with the on-demand price of their own type."""
    found = []
    for group in groups:
        if group.name in skipped or not is_opted_in(group.tags):
            continue
        try:
            if not parse_policy(group.name, group.tags, default_grace_period=0).uses_commitments:
                continue
        except PolicyError:
            continue
        for member in group.members:
            instance = instances.get(member.instance_id)
            if (instance is None or instance.lifecycle != "spot" or not member.in_service or instance.state != "running"
                    or instance.instance_type not in prices):
                continue
            found.append(SpotFact(instance.instance_id, group.name, instance.instance_type,
                                  instance.availability_zone, prices[instance.instance_type], "Linux/UNIX",
                                  instance.launch_time or ""))
    return found


def idle_key(commitment_id: str) -> str:
    return f"{IDLE_KEY_PREFIX}{commitment_id}"


def track_idle(coverage: Coverage, previous: Mapping[str, float], now: float) -> dict[str, float]:
    """commitment id -> when it was first seen idle, for those idle now (a used one is forgotten: the clock
    restarts the next time it goes idle)."""
    return {c.commitment_id: min(previous.get(c.commitment_id, now), now)
            for c in coverage.commitments if c.idle > 1e-9}


def plan_reverse(coverage: Coverage, spots: Sequence[SpotFact], *, idle_since: Mapping[str, float], now: float,
                 groups_in_flight: Collection[str], reverse_in_flight: bool, min_idle_seconds: int = MIN_IDLE_SECONDS,
                 max_per_scan: int = 1, cooling_on_demand: Collection[Pool] = frozenset(),
                 ) -> tuple[list[ReversePick], list[ReverseSkip]]:
    """Which spots to swap back to on-demand now. Commits each pick in `coverage`, so a second pick in the same
    scan cannot spend the same idle units. `cooling_on_demand`: on-demand pools on cooldown (no capacity lately);
    a spot whose swap back would launch into one waits, and another spot may go instead."""
    picks: list[ReversePick] = []
    skips: list[ReverseSkip] = []
    for spot in sorted(spots, key=lambda s: (s.launch_time, s.instance_id)):  # the longest-running spot first
        usage = Usage(spot.instance_id, spot.instance_type, spot.availability_zone, spot.on_demand_price,
                      spot.platform, priority=OPTED_IN)
        shares = coverage.would_cover(usage)
        if shares is None:
            continue  # nothing idle would pay for it: no line, most spots are in this case
        ids = sorted({s.commitment_id for s in shares})
        young = [i for i in ids if now - idle_since.get(i, now) < min_idle_seconds]
        if reverse_in_flight:
            why = "a swap back to on-demand is in flight: one at a time"
        elif spot.asg_name in groups_in_flight:
            why = "a swap is in flight in the group"
        elif (pool := Pool(spot.instance_type, spot.availability_zone)) in cooling_on_demand:
            why = f"on-demand {pool} is cooling down after no on-demand capacity"
        elif young:
            idle_for = int(now - idle_since.get(young[0], now))
            why = (f"{short_id(young[0])} idle for {idle_for}s, under the {min_idle_seconds}s needed before a swap "
                   "back")
        elif len(picks) >= max_per_scan:
            why = f"{max_per_scan} swap(s) back per scan"
        else:
            coverage.take(usage)
            uses = [c for i in ids if (c := coverage.commitment(i)) is not None]
            named = "; ".join(f"{c.kind} {short_id(c.commitment_id)} ({c.label}, {c.in_use()} after)" for c in uses)
            picks.append(ReversePick(spot.asg_name, spot.instance_id, spot.instance_type,
                                     f"back to on-demand {spot.instance_type}: idle commitment pays for it, {named}"))
            continue
        skips.append(ReverseSkip(spot.asg_name, spot.instance_id, f"stays spot for now: {why}"))
    return picks, skips
