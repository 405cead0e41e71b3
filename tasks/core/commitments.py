"""Which running on-demand instances a Reserved Instance or Savings Plan already pays for, and how much of each
commitment sits idle. Pure: commitments and usage in, a coverage ledger out.

AWS's documented order (EC2 User Guide "How Reserved Instance discounts are applied"; Savings Plans User Guide
"Understanding how Savings Plans apply to your AWS usage"), followed pass by pass:
1. zonal RIs: exact type, platform, tenancy and Availability Zone;
2. regional RIs: exact type, platform and tenancy in any zone; a regional Linux/UNIX default-tenancy RI is
   size-flexible within its family by normalization factor, applied from the smallest size up;
3. EC2 Instance Savings Plans (their family and region), then Compute Savings Plans, each to the usage with the
   highest saving over on-demand first (ties: the lower rate first), until the commitment per hour runs out.

Where the model simplifies (docs/commitments.md says why each is safe):
- Usage outside opted-in groups consumes first, through every pass, before any opted-in usage: billing does not
  rank accounts' instances, so we assume our own are the marginal ones (a covered verdict is then never too kind).
- Among opted-in usage, groups that ignore commitments come last, and the newest instances of a group are covered
  first, so the oldest (the ones the scanner swaps first) are the uncovered ones.
- Plans of one type are pooled in id order; a plan's own rate is used for the usage it covers.
- One hour is one instance-hour; per-second billing within the hour and Organizations sharing are not modeled.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

LINUX = "Linux/UNIX"
DEFAULT_TENANCY = "default"
RI, SAVINGS_PLAN = "RI", "Savings Plan"
ZONAL, REGIONAL = "Availability Zone", "Region"
COMPUTE, EC2_INSTANCE = "Compute", "EC2Instance"
# Usage priorities: who consumes commitments first (see the module docstring).
OUTSIDE, OPTED_IN, IGNORING = 0, 1, 2
_EPSILON = 1e-9

# AWS's normalization factors for instance size flexibility (nano 0.25 ... 32xlarge 256 and above).
NORMALIZATION_FACTORS: dict[str, float] = {
    "nano": 0.25, "micro": 0.5, "small": 1, "medium": 2, "large": 4, "xlarge": 8, "2xlarge": 16, "3xlarge": 24,
    "4xlarge": 32, "6xlarge": 48, "8xlarge": 64, "9xlarge": 72, "10xlarge": 80, "12xlarge": 96, "16xlarge": 128,
    "18xlarge": 144, "24xlarge": 192, "32xlarge": 256, "48xlarge": 384, "56xlarge": 448, "112xlarge": 896,
}
_METAL_SIZED = re.compile(r"metal-(\d+xl)")


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def normalization_factor(instance_type: str, family_types: Iterable[str] = ()) -> float | None:
    """The type's normalization factor; a `.metal` type has that of its family's largest size (AWS's rule), taken
    from `family_types` (the family's other types), else unknown (None: the RI then covers its exact type only)."""
    size = instance_type.split(".", 1)[1] if "." in instance_type else ""
    if size in NORMALIZATION_FACTORS:
        return NORMALIZATION_FACTORS[size]
    sized = _METAL_SIZED.fullmatch(size)
    if sized:
        return NORMALIZATION_FACTORS.get(sized.group(1) + "arge")
    if size == "metal":
        family = family_of(instance_type)
        factors = [NORMALIZATION_FACTORS[t.split(".", 1)[1]] for t in family_types
                   if family_of(t) == family and "." in t and t.split(".", 1)[1] in NORMALIZATION_FACTORS]
        return max(factors, default=None)
    return None


def platform_of(product_description: str) -> str:
    """RI product descriptions carry an EC2-Classic-era ` (Amazon VPC)` suffix that means nothing today."""
    return product_description.removesuffix(" (Amazon VPC)").strip() or LINUX


def short_id(commitment_id: str) -> str:
    return commitment_id if len(commitment_id) <= 12 else commitment_id[:8] + "…"


@dataclass(frozen=True)
class Usage:
    """One running on-demand instance in the region, ours or not."""

    instance_id: str
    instance_type: str
    availability_zone: str
    on_demand_price: float  # $/hour at the list price
    platform: str = LINUX
    tenancy: str = DEFAULT_TENANCY
    priority: int = OUTSIDE  # OUTSIDE, OPTED_IN or IGNORING
    launch_time: str = ""  # ISO 8601; newer opted-in instances are covered first


@dataclass(frozen=True)
class ReservedInstance:
    """One DescribeReservedInstances entry (a reservation of `count` instances)."""

    reservation_id: str
    instance_type: str
    count: int
    scope: str = REGIONAL  # ZONAL or REGIONAL
    availability_zone: str | None = None
    platform: str = LINUX
    tenancy: str = DEFAULT_TENANCY
    offering_class: str = "standard"
    hourly_cost: float = 0.0  # per instance: usage + recurring charges + upfront spread over the term
    end: datetime | None = None
    state: str = "active"
    factor: float | None = None  # normalization factor of instance_type; None: worked out from the name

    def __post_init__(self) -> None:
        if self.factor is None:
            object.__setattr__(self, "factor", normalization_factor(self.instance_type))

    def active(self, now: datetime) -> bool:
        return self.state == "active" and (self.end is None or self.end > now)

    @property
    def zonal(self) -> bool:
        return self.scope == ZONAL

    @property
    def size_flexible(self) -> bool:
        return (not self.zonal and self.platform == LINUX and self.tenancy == DEFAULT_TENANCY
                and self.factor is not None)

    @property
    def capacity(self) -> float:
        """Instances, or normalized units when size-flexible."""
        return self.count * (self.factor or 1.0) if self.size_flexible else float(self.count)

    def where(self) -> str:
        return self.availability_zone if self.zonal and self.availability_zone else "regional"


@dataclass(frozen=True)
class SavingsPlan:
    """One active Savings Plan and its rates for the usage in question (DescribeSavingsPlanRates)."""

    plan_id: str
    plan_type: str  # COMPUTE or EC2_INSTANCE
    commitment: float  # $/hour
    rates: Mapping[tuple[str, str, str], float] = field(default_factory=dict)  # (type, platform, tenancy) -> $/h
    instance_family: str | None = None
    region: str | None = None
    end: datetime | None = None
    state: str = "active"

    def active(self, now: datetime) -> bool:
        return self.state == "active" and (self.end is None or self.end > now)

    def rate_for(self, usage: Usage) -> float | None:
        if self.plan_type == EC2_INSTANCE and self.instance_family and family_of(usage.instance_type) != \
                self.instance_family:
            return None
        return self.rates.get((usage.instance_type, usage.platform, usage.tenancy))


@dataclass(frozen=True)
class Share:
    commitment_id: str
    kind: str  # RI or SAVINGS_PLAN
    fraction: float  # of the instance-hour


@dataclass(frozen=True)
class InstanceCoverage:
    usage: Usage
    shares: tuple[Share, ...] = ()

    @property
    def fraction(self) -> float:
        return min(1.0, sum(s.fraction for s in self.shares))

    @property
    def covered(self) -> bool:
        """Wholly paid for by commitments: keeping it on-demand costs nothing more."""
        return self.fraction >= 1.0 - _EPSILON

    @property
    def marginal_cost(self) -> float:
        """$/hour this instance adds to the bill on top of the commitments."""
        return round(max(0.0, 1.0 - self.fraction) * self.usage.on_demand_price, 6)


@dataclass(frozen=True)
class CommitmentUse:
    """One commitment after allocation: capacity and use in its own unit (instances, normalized units or $/h)."""

    commitment_id: str
    kind: str
    label: str  # "m5.large, us-east-1a" / "m5 family, regional" / "Compute" / "EC2Instance m5"
    capacity: float
    used: float
    unit: str  # "instances", "units" or "$/h"
    hourly_cost: float  # what the whole commitment costs per hour
    per_instance: float = 1.0  # units per instance of the RI's own type (size-flexible RIs)

    @property
    def idle(self) -> float:
        return max(0.0, round(self.capacity - self.used, 9))

    @property
    def idle_per_hour(self) -> float:
        """Dollars per hour paid for and not used."""
        return round(self.hourly_cost * self.idle / self.capacity, 6) if self.capacity > 0 else 0.0

    def in_use(self) -> str:
        if self.kind == SAVINGS_PLAN:
            return f"commitment ${self.capacity:.2f}/h, ${self.idle:.2f}/h idle"
        used = self.used / self.per_instance
        return f"{used:g} of {self.capacity / self.per_instance:g} in use"


class _Ledger:
    """What is left of each commitment while usage is applied in AWS's order."""

    def __init__(self, reserved: Sequence[ReservedInstance], plans: Sequence[SavingsPlan]) -> None:
        self.reserved = sorted(reserved, key=lambda r: r.reservation_id)
        self.plans = sorted(plans, key=lambda p: p.plan_id)
        self.ri_left = {r.reservation_id: r.capacity for r in self.reserved}
        self.sp_left = {p.plan_id: p.commitment for p in self.plans}
        self.sp_held = {p.plan_id: 0.0 for p in self.plans}  # left for other usage: idle, but not ours to use

    def reserve_savings_plans(self, dollars: float) -> None:
        """Hold back $/hour of Savings-Plan commitment for other usage: Compute plans first (they fit anything)."""
        for plan in sorted(self.plans, key=lambda p: (p.plan_type != COMPUTE, p.plan_id)):
            held = min(dollars, self.sp_left[plan.plan_id])
            self.sp_left[plan.plan_id] -= held
            self.sp_held[plan.plan_id] += held
            dollars -= held

    def apply(self, usages: Sequence[Usage], left: dict[str, float], shares: dict[str, list[Share]]) -> None:
        """Apply every pass to one phase of usage; `left` is each instance's uncovered fraction."""
        by_age = sorted(usages, key=lambda u: (u.launch_time, u.instance_id), reverse=True)  # newest first
        for ri in (r for r in self.reserved if r.zonal):
            self._exact(ri, [u for u in by_age if u.availability_zone == ri.availability_zone], left, shares)
        for ri in (r for r in self.reserved if not r.zonal and not r.size_flexible):
            self._exact(ri, by_age, left, shares)
        smallest_first = sorted(by_age, key=lambda u: _factor_of(u) or 0.0)  # stable: newest first within a size
        for usage in smallest_first:
            self._flexible(usage, left, shares)
        for plan_type in (EC2_INSTANCE, COMPUTE):
            plans = [p for p in self.plans if p.plan_type == plan_type]
            ranked = sorted(
                ((u, min(r for p in plans if (r := p.rate_for(u)) is not None)) for u in by_age
                 if any(p.rate_for(u) is not None for p in plans)),
                key=lambda ur: (-(1 - ur[1] / ur[0].on_demand_price) if ur[0].on_demand_price else 0.0, ur[1]),
            )
            for usage, _ in ranked:
                self._savings_plans(usage, plans, left, shares)

    def _exact(self, ri: ReservedInstance, usages: Sequence[Usage], left: dict[str, float],
               shares: dict[str, list[Share]]) -> None:
        for usage in usages:
            if self.ri_left[ri.reservation_id] < 1.0 - _EPSILON:
                return
            if left[usage.instance_id] >= 1.0 - _EPSILON and (usage.instance_type, usage.platform, usage.tenancy) \
                    == (ri.instance_type, ri.platform, ri.tenancy):
                self.ri_left[ri.reservation_id] -= 1.0
                left[usage.instance_id] = 0.0
                shares[usage.instance_id].append(Share(ri.reservation_id, RI, 1.0))

    def _flexible(self, usage: Usage, left: dict[str, float], shares: dict[str, list[Share]]) -> None:
        factor = _factor_of(usage)
        if factor is None or usage.platform != LINUX or usage.tenancy != DEFAULT_TENANCY:
            return
        for ri in self.reserved:
            if left[usage.instance_id] <= _EPSILON:
                return
            if not ri.size_flexible or family_of(ri.instance_type) != family_of(usage.instance_type):
                continue
            units = min(self.ri_left[ri.reservation_id], left[usage.instance_id] * factor)
            if units > _EPSILON:
                self.ri_left[ri.reservation_id] -= units
                left[usage.instance_id] -= units / factor
                shares[usage.instance_id].append(Share(ri.reservation_id, RI, units / factor))

    def _savings_plans(self, usage: Usage, plans: Sequence[SavingsPlan], left: dict[str, float],
                       shares: dict[str, list[Share]]) -> None:
        for plan in plans:
            rate = plan.rate_for(usage)
            if rate is None or left[usage.instance_id] <= _EPSILON:
                continue
            fraction = left[usage.instance_id] if rate == 0 else min(left[usage.instance_id],
                                                                     self.sp_left[plan.plan_id] / rate)
            if fraction > _EPSILON:
                self.sp_left[plan.plan_id] -= fraction * rate
                left[usage.instance_id] -= fraction
                shares[usage.instance_id].append(Share(plan.plan_id, SAVINGS_PLAN, fraction))


def _factor_of(usage: Usage) -> float | None:
    return normalization_factor(usage.instance_type)


@dataclass
class Coverage:
    """The allocation: per instance what covers it, per commitment what is used and idle."""

    instances: dict[str, InstanceCoverage]
    commitments: tuple[CommitmentUse, ...]
    ledger: _Ledger

    def of(self, instance_id: str) -> InstanceCoverage | None:
        return self.instances.get(instance_id)

    def commitment(self, commitment_id: str) -> CommitmentUse | None:
        return next((c for c in self.commitments if c.commitment_id == commitment_id), None)

    def why_kept(self, instance_id: str) -> str | None:
        """The plan line for a covered instance, e.g. `kept on-demand: covered by RI 1a2b3c4d… (m5.large,
        us-east-1a, 3 of 4 in use)`; None when it is not wholly covered."""
        found = self.instances.get(instance_id)
        if found is None or not found.covered:
            return None
        main = max(found.shares, key=lambda s: s.fraction)
        use = self.commitment(main.commitment_id)
        assert use is not None
        what = f"{main.kind} {short_id(main.commitment_id)} ({use.label}, {use.in_use()})"
        others = len({s.commitment_id for s in found.shares}) - 1
        return f"kept on-demand: covered by {what}" + (f" and {others} more" if others else "")

    @property
    def idle_per_hour(self) -> float:
        return round(sum(c.idle_per_hour for c in self.commitments), 6)

    def would_cover(self, usage: Usage) -> tuple[Share, ...] | None:
        """The shares that would wholly cover one more instance from what is idle now, or None if it would not be
        wholly covered (an instance that would still pay part on-demand is no reason to leave spot)."""
        return _apply_one(copy.deepcopy(self.ledger), usage)

    def take(self, usage: Usage) -> tuple[Share, ...] | None:
        """Like would_cover, and commit the allocation (for several reverse picks in one scan)."""
        trial = copy.deepcopy(self.ledger)
        found = _apply_one(trial, usage)
        if found is not None:
            self.ledger = trial
            self.instances[usage.instance_id] = InstanceCoverage(usage, found)
            self.commitments = _uses(trial)
        return found


def _apply_one(ledger: _Ledger, usage: Usage) -> tuple[Share, ...] | None:
    left = {usage.instance_id: 1.0}
    shares: dict[str, list[Share]] = {usage.instance_id: []}
    ledger.apply([usage], left, shares)
    return tuple(shares[usage.instance_id]) if left[usage.instance_id] <= _EPSILON else None


def _uses(ledger: _Ledger) -> tuple[CommitmentUse, ...]:
    uses = []
    for ri in ledger.reserved:
        flexible = ri.size_flexible
        label = f"{family_of(ri.instance_type)} family from {ri.instance_type}, regional" if flexible else \
            f"{ri.instance_type}, {ri.where()}"
        uses.append(CommitmentUse(
            ri.reservation_id, RI, label, ri.capacity, ri.capacity - ledger.ri_left[ri.reservation_id],
            "units" if flexible else "instances", ri.hourly_cost * ri.count,
            per_instance=(ri.factor or 1.0) if flexible else 1.0,
        ))
    for plan in ledger.plans:
        label = plan.plan_type if plan.plan_type == COMPUTE else f"{plan.plan_type} {plan.instance_family}"
        used = plan.commitment - ledger.sp_left[plan.plan_id] - ledger.sp_held[plan.plan_id]
        uses.append(CommitmentUse(plan.plan_id, SAVINGS_PLAN, label, plan.commitment, used, "$/h", plan.commitment))
    return tuple(uses)


def cover(usages: Iterable[Usage], reserved: Iterable[ReservedInstance], plans: Iterable[SavingsPlan],
          now: datetime, *, savings_plan_reserve: float = 0.0) -> Coverage:
    """Allocate the active commitments to the usage in AWS's order, outside usage first (module docstring).

    `savings_plan_reserve`: $/hour of Savings-Plan commitment left for other usage (a stack setting): held back
    after outside usage has taken its share and before opted-in usage is covered.
    """
    usages = list(usages)
    ledger = _Ledger([r for r in reserved if r.active(now)], [p for p in plans if p.active(now)])
    left = {u.instance_id: 1.0 for u in usages}
    shares: dict[str, list[Share]] = {u.instance_id: [] for u in usages}
    for priority in (OUTSIDE, OPTED_IN, IGNORING):
        if priority == OPTED_IN and savings_plan_reserve > 0:
            ledger.reserve_savings_plans(savings_plan_reserve)
        ledger.apply([u for u in usages if u.priority == priority], left, shares)
    covered = {u.instance_id: InstanceCoverage(u, tuple(shares[u.instance_id])) for u in usages}
    return Coverage(covered, _uses(ledger), ledger)


def hourly_cost(coverage: Coverage, instance_ids: Iterable[str]) -> float:
    """What the given on-demand instances add per hour on top of commitments (covered ones cost $0)."""
    return round(sum(c.marginal_cost for i in instance_ids if (c := coverage.of(i)) is not None), 6)


def could_be_covered(usage: Usage, reserved: Iterable[ReservedInstance], plans: Iterable[SavingsPlan],
                     now: datetime) -> bool:
    """Whether any active commitment could pay for this usage at all, by the matching rules `cover` applies (zonal
    RIs: zone, type, platform, tenancy; other RIs: type, platform, tenancy, or the family when size-flexible; EC2
    Instance plans: the family; Compute plans: anything). A plan's rates are not consulted (they are read only for
    the fleet), so a plan counts by its kind and family. False means `cover` gives this usage nothing, so taking
    it away strands nothing: the fleet need not be read to say so."""
    kind = (usage.instance_type, usage.platform, usage.tenancy)
    flexible = _factor_of(usage) is not None and usage.platform == LINUX and usage.tenancy == DEFAULT_TENANCY
    for ri in reserved:
        if not ri.active(now):
            continue
        if ri.zonal and ri.availability_zone != usage.availability_zone:
            continue
        if kind == (ri.instance_type, ri.platform, ri.tenancy):
            return True
        if ri.size_flexible and flexible and family_of(ri.instance_type) == family_of(usage.instance_type):
            return True
    return any(p.active(now) and (p.plan_type != EC2_INSTANCE or not p.instance_family
                                  or p.instance_family == family_of(usage.instance_type)) for p in plans)


def stranded_by(usages: Sequence[Usage], reserved: Sequence[ReservedInstance], plans: Sequence[SavingsPlan],
                now: datetime, instance_id: str, *, savings_plan_reserve: float = 0.0) -> str | None:
    """Why taking this on-demand instance away would strand a commitment, or None. Its marginal value: the
    allocation with and without it; a commitment whose idle share grows would be paid for and unused. (Which
    instance the ledger names as covered does not matter here: RIs float, so replacing a "covered" instance of a
    group that has another uncovered one of the same kind strands nothing.)"""
    before = cover(usages, reserved, plans, now, savings_plan_reserve=savings_plan_reserve)
    after = cover([u for u in usages if u.instance_id != instance_id], reserved, plans, now,
                  savings_plan_reserve=savings_plan_reserve)
    grown = [(b, a) for b, a in zip(before.commitments, after.commitments, strict=True)
             if a.idle_per_hour - b.idle_per_hour > 1e-6]
    if not grown:
        return None
    b, a = max(grown, key=lambda pair: pair[1].idle_per_hour - pair[0].idle_per_hour)
    more = f" and {len(grown) - 1} more" if len(grown) > 1 else ""
    return (f"paid for by {b.kind} {short_id(b.commitment_id)} ({b.label}, {b.in_use()}){more}: replacing it would "
            f"leave ${a.idle_per_hour - b.idle_per_hour:.4f}/h of it idle")
