"""`assess`: before anyone opts in, could each group be, what would it save, and which of its tags look like a
mistyped opt-in or policy. Pure: the CLI reads groups, hooks, instances and prices; this decides."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tasks.core.lifecycle_hooks import launch_hook_refusal
from tasks.core.mixed_instances import weighted_refusal
from tasks.core.model import Group, Instance
from tasks.core.policy import PolicyError, parse_policy
from tasks.core.tags import OPT_IN, OPT_IN_VALUE, POLICY_TAGS, STATE_TAG_PREFIXES, is_opted_in

HOURS_PER_MONTH = 730  # AWS's own convention for monthly estimates (8,760 h / 12)
OPTED_IN, READY, BLOCKED = "opted in", "ready", "blocked"
_TRUTHY = ("true", "yes", "1", "on", "enabled")


@dataclass(frozen=True)
class GroupAssessment:
    asg_name: str
    region: str
    status: str  # OPTED_IN, READY (could be opted in as it is) or BLOCKED
    why_not: tuple[str, ...]  # what blocks it (empty unless BLOCKED)
    on_demand: int
    spot: int
    hourly_saving: float  # every on-demand instance on the cheapest compatible spot pool in its zone
    unpriced: int  # on-demand instances with no on-demand or spot price (not in the saving)
    misconfigured: tuple[str, ...] = field(default=())  # near-miss tags, each with a "did you mean"

    @property
    def monthly_saving(self) -> float:
        return round(self.hourly_saving * HOURS_PER_MONTH, 2)


def near_misses(tags: Mapping[str, str]) -> list[str]:
    """Tags that look meant for us but do nothing (or are refused): `AsgOptimizer=true`, `AsgOptimiser=True`,
    unknown `AsgOptimiser:*` keys; each with what was probably meant."""
    found = []
    for key, value in sorted(tags.items()):
        if key == OPT_IN:
            if value != OPT_IN_VALUE and value.strip().lower() in _TRUTHY:
                found.append(f"tag {key}={value!r} does not opt in (only 'true' does): did you mean {OPT_IN}=true?")
            continue
        head, sep, rest = key.partition(":")
        if _looks_like(head, OPT_IN) and head != OPT_IN:
            meant = f"{OPT_IN}{sep}{rest}" if sep else OPT_IN
            if sep:
                meant = _closest(meant) or meant
            suffix = "=true" if not sep else ""
            found.append(f"tag {key}={value!r} is not ours: did you mean {meant}{suffix}?")
        elif head == OPT_IN and sep and key not in POLICY_TAGS and not key.startswith(STATE_TAG_PREFIXES):
            closest = _closest(key)
            found.append(f"tag {key} is not a policy tag" + (f": did you mean {closest}?" if closest else
                                                               f" (known: {', '.join(POLICY_TAGS)})"))
    return found


def _looks_like(word: str, reference: str) -> bool:
    return word.lower() == reference.lower() or difflib.SequenceMatcher(None, word.lower(),
                                                                        reference.lower()).ratio() >= 0.8


def _closest(key: str) -> str | None:
    close = difflib.get_close_matches(key, POLICY_TAGS, n=1, cutoff=0.75)
    if close:
        return close[0]
    lowered = {k.lower(): k for k in POLICY_TAGS}
    return lowered.get(key.lower())


def blockers(group: Group, hooks: Iterable[tuple[str, str]], on_demand_percentage: int | None,
             launch_configuration: str | None) -> list[str]:
    """Why opting the group in would not swap anything (each a sentence naming the setting)."""
    why = []
    if group.launch_template_id is None and group.launch_template_name is None:
        what = f"launch configuration {launch_configuration}" if launch_configuration else "no launch template"
        why.append(f"uses {what}: swaps launch from a launch template")
    if on_demand_percentage is not None and on_demand_percentage < 100:
        why.append(f"mixes spot already (OnDemandPercentageAboveBaseCapacity={on_demand_percentage})")
    try:
        bypass = parse_policy(group.name, group.tags, default_grace_period=0).bypass_launch_hooks
    except PolicyError:
        bypass = False  # a malformed policy is reported as a near miss or by `status`, not as a blocker
    hook = launch_hook_refusal(group.name, hooks, bypass=bypass)
    if hook:
        why.append(hook.removeprefix(f"ASG {group.name} ").removeprefix(f"ASG {group.name}: "))
    weighted = weighted_refusal(group)
    if weighted:
        why.append(weighted.removeprefix(f"ASG {group.name} ").removeprefix(f"ASG {group.name}: "))
    return why


def saving_of(instances: Iterable[Instance], on_demand_prices: Mapping[str, float],
              spot_prices: Mapping[tuple[str, str], float], compatible: Mapping[str, Iterable[str]]
              ) -> tuple[float, int]:
    """(hourly saving, unpriced count) if every on-demand instance ran on the cheapest compatible spot pool of
    its zone. `spot_prices` by (type, zone); `compatible` maps a type to the types that could replace it."""
    saving, unpriced = 0.0, 0
    for instance in instances:
        if not instance.on_demand:
            continue
        od = on_demand_prices.get(instance.instance_type)
        spots = [spot_prices[(t, instance.availability_zone)] for t in compatible.get(instance.instance_type, ())
                 if (t, instance.availability_zone) in spot_prices]
        if od is None or not spots:
            unpriced += 1
            continue
        saving += max(0.0, od - min(spots))
    return round(saving, 4), unpriced


def assess(group: Group, region: str, instances: Iterable[Instance], why_not: list[str], saving: float,
           unpriced: int) -> GroupAssessment:
    members = list(instances)
    on_demand = sum(1 for i in members if i.on_demand)
    status = OPTED_IN if is_opted_in(group.tags) else BLOCKED if why_not else READY
    return GroupAssessment(group.name, region, status, tuple(why_not) if status == BLOCKED else (), on_demand,
                           len(members) - on_demand, saving, unpriced, tuple(near_misses(group.tags)))


def by_saving(assessments: Iterable[GroupAssessment]) -> list[GroupAssessment]:
    """Biggest saving first; ties by region and name."""
    return sorted(assessments, key=lambda a: (-a.hourly_saving, a.region, a.asg_name))

