"""Which on-demand instances to replace now, and why every other instance is left alone.

Pure: groups, EC2 facts and the names of RUNNING executions in, a plan out. Limits are counted across the
whole group (on-demand floor, swaps in flight), so a plan never takes a group below its policy even when
several of its instances are eligible. Oldest instances go first: they are the likeliest to be replaced
anyway and have run on-demand the longest.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from tasks.core.model import Group, Instance, Member
from tasks.core.naming import asg_part_of, execution_name, instance_of
from tasks.core.policy import Policy, PolicyError, parse_policy
from tasks.core.prices import OPERATING_SYSTEMS, Pool
from tasks.core.tags import OPT_IN, is_opted_in

REPLACE, SKIP = "replace", "skip"
PENDING_STATES = ("Pending", "Pending:Wait", "Pending:Proceed")
# Members that count toward desired capacity (Standby, Terminating*, Detaching do not).
ACTIVE_STATES = (*PENDING_STATES, "InService")
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Verdict:
    asg_name: str
    instance_id: str
    action: str  # REPLACE or SKIP
    why: str


@dataclass(frozen=True)
class GroupSkip:
    asg_name: str
    why: str
    malformed: bool = False  # a policy tag is malformed: the owner must fix it, so it is logged as a warning


@dataclass(frozen=True)
class Plan:
    verdicts: tuple[Verdict, ...] = ()
    skipped_groups: tuple[GroupSkip, ...] = ()

    @property
    def picks(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.action == REPLACE]


def launched_at(instance: Instance) -> datetime | None:
    if not instance.launch_time:
        return None
    at = datetime.fromisoformat(instance.launch_time)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def executions_by_group(groups: Sequence[Group], running: Collection[str]) -> dict[str, set[str]]:
    """RUNNING executions per group: by the on-demand's membership, else by the ASG part of the name (the
    on-demand has left the group once a swap is retiring it, but the swap is still in flight). Same-looking
    names of two groups (`a b` and `a-b`) count for both: over-counting only delays a swap."""
    member_of = {m.instance_id: g.name for g in groups for m in g.members}
    found: dict[str, set[str]] = {g.name: set() for g in groups}
    by_part: dict[tuple[int, str], list[str]] = {}  # (instance id length, ASG part as cut for it) -> groups
    for name in running:
        instance_id = instance_of(name)
        if instance_id is None:
            continue
        if instance_id in member_of:
            found[member_of[instance_id]].add(name)
            continue
        size = len(instance_id)
        if not any(key[0] == size for key in by_part):
            for group in groups:  # the cut depends only on the id's length: 8 or 17 hex digits
                part = asg_part_of(execution_name(group.name, "i-" + "0" * (size - 2), _EPOCH)) or ""
                by_part.setdefault((size, part), []).append(group.name)
        for group_name in by_part.get((size, asg_part_of(name) or ""), []):
            found[group_name].add(name)
    return found


def group_skip_reason(group: Group, policy: Policy, now: datetime, busy: str | None) -> str | None:
    """Why nothing in the group may be swapped now, or None."""
    if group.status:
        return f"ASG status is {group.status!r}: an update is pending"
    if not (group.launch_template_id or group.launch_template_name):
        return "no launch template (launch configurations are not supported)"
    if busy:
        return busy
    active = sum(1 for m in group.members if m.lifecycle_state in ACTIVE_STATES)
    if active != group.desired:
        return f"scaling in progress: {active} instances Pending or InService for desired capacity {group.desired}"
    if not policy.in_window(now):
        return f"outside window {policy.window} (now {now.astimezone(UTC):%H:%M} UTC)"
    return None


def _instance_skip(member: Member, instance: Instance | None, replacing: Mapping[str, str], policy: Policy,
                   now: datetime, cooling_pools: Collection[Pool] = (), kept: Mapping[str, str] | None = None,
                   ) -> str | None:
    if instance is None:
        return "not found in EC2"
    if not instance.on_demand:
        return f"already {instance.lifecycle}"
    if instance.platform_details and instance.platform_details not in OPERATING_SYSTEMS:
        return f"platform {instance.platform_details!r} has no spot market (EC2 publishes no spot price for it)"
    if member.instance_id in replacing:
        return f"already being replaced by execution {replacing[member.instance_id]}"
    if not member.in_service:
        return f"{member.lifecycle_state}, not InService"
    if member.protected:
        return "protected from scale-in"
    if instance.state != "running":
        return f"EC2 state {instance.state}, not running"
    launched = launched_at(instance)
    if launched is None:
        return "launch time unknown, so its grace period cannot be checked"
    age = int((now - launched).total_seconds())
    if age < policy.grace_period:
        return f"in grace period: launched {age}s ago, grace period {policy.grace_period}s"
    if kept and policy.uses_commitments and member.instance_id in kept:
        return kept[member.instance_id]  # a commitment pays for it: a spot would only add its price
    pool = Pool(instance.instance_type, instance.availability_zone)
    if pool in cooling_pools:
        return f"spot pool {pool} is cooling down (no capacity or interrupted recently)"
    return None


def select_group(group: Group, policy: Policy, instances: Mapping[str, Instance], in_flight: Collection[str],
                 replacing: Mapping[str, str], now: datetime, cooling_pools: Collection[Pool] = (),
                 kept: Mapping[str, str] | None = None) -> list[Verdict]:
    """Verdicts for every member of a group that may be swapped now (group-level checks already passed)."""
    verdicts: dict[str, Verdict] = {}
    candidates: list[tuple[datetime, str]] = []
    on_demand = 0  # active members that are (or may be) on-demand, minus those already being swapped out
    for member in group.members:
        instance = instances.get(member.instance_id)
        counts = instance is None or instance.on_demand  # unknown counts as on-demand: keeps more, never fewer
        if member.lifecycle_state in ACTIVE_STATES and counts and member.instance_id not in replacing:
            on_demand += 1
        why = _instance_skip(member, instance, replacing, policy, now, cooling_pools, kept)
        if why:
            verdicts[member.instance_id] = Verdict(group.name, member.instance_id, SKIP, why)
        else:
            assert instance is not None
            candidates.append((launched_at(instance) or now, member.instance_id))
    floor = policy.on_demand_floor(group.desired)
    floor_room = on_demand - floor
    parallel_room = policy.max_parallel - len(in_flight)
    room = max(0, min(floor_room, parallel_room))
    picked = min(room, len(candidates))
    this_scan = f"{len(in_flight)} in flight, {picked} picked now"
    for rank, (launched, instance_id) in enumerate(sorted(candidates)):
        if rank < room:
            why = (f"oldest eligible on-demand (launched {launched:%Y-%m-%dT%H:%M:%SZ}); {on_demand} on-demand for "
                   f"floor {floor}, {len(in_flight)}/{policy.max_parallel} swaps in flight")
            verdicts[instance_id] = Verdict(group.name, instance_id, REPLACE, why)
        elif parallel_room <= floor_room:
            why = f"MaxParallel {policy.max_parallel} reached ({this_scan})"
            verdicts[instance_id] = Verdict(group.name, instance_id, SKIP, why)
        else:
            why = (f"on-demand floor {floor} reached (MinOnDemand {policy.min_on_demand}, MinOnDemandPercent "
                   f"{policy.min_on_demand_percent}% of desired {group.desired}): {on_demand} on-demand not being "
                   f"replaced, {picked} picked now")
            verdicts[instance_id] = Verdict(group.name, instance_id, SKIP, why)
    return [verdicts[m.instance_id] for m in group.members]


def select(groups: Sequence[Group], instances: Mapping[str, Instance], running: Collection[str], now: datetime,
           *, busy: Mapping[str, str] | None = None, cooling_pools: Collection[Pool] = (),
           kept: Mapping[str, str] | None = None) -> Plan:
    """The plan for a fleet. `running` = names of RUNNING executions; `busy` = group name -> why it is busy
    (e.g. an instance refresh found by the caller); `cooling_pools` = spot pools on cooldown (an instance whose
    own type x AZ is cooling waits); `kept` = on-demand instance id -> why a commitment keeps it on-demand
    (tasks.core.commitments; honoured in groups whose policy uses commitments)."""
    busy = busy or {}
    by_group = executions_by_group(groups, running)
    replacing: dict[str, str] = {}
    for name in sorted(running):
        instance_id = instance_of(name)
        if instance_id:
            replacing.setdefault(instance_id, name)
    verdicts: list[Verdict] = []
    skipped: list[GroupSkip] = []
    for group in groups:
        if not is_opted_in(group.tags):
            value = group.tags.get(OPT_IN)
            shown = "missing" if value is None else repr(value)
            skipped.append(GroupSkip(group.name, f"not opted in: tag {OPT_IN} is {shown}, expected 'true'"))
            continue
        try:
            policy = parse_policy(group.name, group.tags, default_grace_period=group.health_check_grace_period)
        except PolicyError as error:
            skipped.append(GroupSkip(group.name, str(error), malformed=True))
            continue
        why = group_skip_reason(group, policy, now, busy.get(group.name))
        if why:
            skipped.append(GroupSkip(group.name, why))
            continue
        verdicts += select_group(group, policy, instances, by_group[group.name], replacing, now, cooling_pools,
                                 kept)
    return Plan(tuple(verdicts), tuple(skipped))


def as_launched(group: Group) -> Group:
    """The group as it will be once its Pending members are InService: the event path decides now for a swap
    that validates after the grace period (Validate re-checks the instance then)."""
    members = tuple(
        replace(m, lifecycle_state="InService") if m.lifecycle_state in PENDING_STATES else m for m in group.members
    )
    return replace(group, members=members)


def decide_launched(group: Group, instances: Mapping[str, Instance], running: Collection[str], now: datetime,
                    instance_id: str, kept: Mapping[str, str] | None = None) -> tuple[Verdict, int]:
    """The verdict for an instance the group just launched, and the seconds its swap must first wait so the
    instance has served its grace period. Decided as of the end of that wait, with the same rules as a scan."""
    group = as_launched(group)
    if group.member(instance_id) is None:
        return Verdict(group.name, instance_id, SKIP, f"not a member of ASG {group.name}"), 0
    delay = 0
    try:
        grace = parse_policy(group.name, group.tags, default_grace_period=group.health_check_grace_period).grace_period
    except PolicyError:
        grace = 0  # select() skips the group with the message
    launched = launched_at(instances[instance_id]) if instance_id in instances else None
    if launched is not None:
        delay = max(0, grace - int((now - launched).total_seconds()))
    plan = select([group], instances, running, now + timedelta(seconds=delay), kept=kept)
    if plan.skipped_groups:
        return Verdict(group.name, instance_id, SKIP, plan.skipped_groups[0].why), 0
    verdict = next(v for v in plan.verdicts if v.instance_id == instance_id)
    return verdict, delay if verdict.action == REPLACE else 0
