"""The account's commitments and on-demand usage in the region, read for the coverage model (tasks.core.commitments).

- Reserved Instances: DescribeReservedInstances, `state=active` (EC2 returns them in one response: no paging).
- Savings Plans: DescribeSavingsPlans (`active`), then DescribeSavingsPlanRates per plan for EC2 usage in this
  region of the types in question, both followed page by page (nextToken; boto3 has no paginator for them).
- Usage: every running instance of the region (DescribeInstances, paginated): commitments apply to any matching
  usage, not only our groups'.
Commitments change rarely: a warm container keeps them for COMMITMENTS_TTL_SECONDS. Nothing is read when the stack
setting turns commitment awareness off, and no usage is read when there is no active commitment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tasks.aws.clients import client
from tasks.aws.coordination import idle_records, save_idle_records
from tasks.aws.groups import group_from_response, opted_in_groups
from tasks.aws.instances import raw_instances
from tasks.aws.prices import PriceBook
from tasks.aws.settings import Commitments, Region
from tasks.core.commitment_swaps import ReversePick, ReverseSkip, plan_reverse, spot_facts, track_idle
from tasks.core.commitments import (
    IGNORING,
    OPTED_IN,
    OUTSIDE,
    Coverage,
    ReservedInstance,
    SavingsPlan,
    Usage,
    could_be_covered,
    cover,
    platform_of,
    stranded_by,
)
from tasks.core.errors import InvalidInput
from tasks.core.model import Group, Instance
from tasks.core.naming import instance_of
from tasks.core.policy import PolicyError, parse_policy
from tasks.core.prices import Pool, operating_system
from tasks.core.selection import executions_by_group
from tasks.core.settings import CommitmentSettings

COMMITMENTS_TTL_SECONDS = 300
_RATE_TYPES_PER_CALL = 100
# region -> (when read, the EC2 client it was read with, what was read): a new client (another account or endpoint,
# or tests between mocks) reads again.
_cache: dict[str, tuple[float, Any, tuple[list[ReservedInstance], list[dict[str, Any]]]]] = {}


def hourly_cost_of(raw: Mapping[str, Any]) -> float:
    """An RI's cost per instance-hour: usage price, hourly recurring charges, and the upfront spread over the term."""
    hours = float(raw.get("Duration", 0)) / 3600
    recurring = sum(float(c.get("Amount", 0)) for c in raw.get("RecurringCharges", []) if c.get("Frequency") ==
                    "Hourly")
    upfront = float(raw.get("FixedPrice", 0)) / hours if hours else 0.0
    return round(float(raw.get("UsagePrice", 0)) + recurring + upfront, 6)


def reserved_instance_from(raw: Mapping[str, Any]) -> ReservedInstance:
    return ReservedInstance(
        raw["ReservedInstancesId"], raw["InstanceType"], int(raw["InstanceCount"]), raw.get("Scope", "Region"),
        raw.get("AvailabilityZone"), platform_of(raw.get("ProductDescription", "")),
        raw.get("InstanceTenancy", "default"), raw.get("OfferingClass", "standard"), hourly_cost_of(raw),
        raw.get("End"), raw.get("State", "active"),
    )


def _active_savings_plans() -> list[dict[str, Any]]:
    found, token = [], None
    while True:
        page = client("savingsplans").describe_savings_plans(states=["active"], **({"nextToken": token} if token
                                                                                   else {}))
        found += page.get("savingsPlans", [])
        token = page.get("nextToken")
        if not token:
            return found


def _rates(plan_id: str, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found, token = [], None
    while True:
        page = client("savingsplans").describe_savings_plan_rates(
            savingsPlanId=plan_id, filters=filters, **({"nextToken": token} if token else {}))
        found += page.get("searchResults", [])
        token = page.get("nextToken")
        if not token:
            return found


def _read(region: str) -> tuple[list[ReservedInstance], list[dict[str, Any]]]:
    ec2 = client("ec2")
    cached = _cache.get(region)
    if cached is not None and cached[1] is ec2 and time.monotonic() - cached[0] < COMMITMENTS_TTL_SECONDS:
        return cached[2]
    raw = ec2.describe_reserved_instances(Filters=[{"Name": "state", "Values": ["active"]}])
    reserved = [reserved_instance_from(r) for r in raw["ReservedInstances"]]
    plans = [p for p in _active_savings_plans()
             if p.get("region") in (None, "", region) and "EC2" in p.get("productTypes", ["EC2"])]
    _cache[region] = (time.monotonic(), ec2, (reserved, plans))
    return reserved, plans


def reset_cache() -> None:
    _cache.clear()


def _plan_from(raw: Mapping[str, Any], region: str, types: list[str]) -> SavingsPlan:
    rates: dict[tuple[str, str, str], float] = {}
    for start in range(0, len(types), _RATE_TYPES_PER_CALL):
        filters = [{"name": "region", "values": [region]}, {"name": "productType", "values": ["EC2"]},
                   {"name": "instanceType", "values": types[start:start + _RATE_TYPES_PER_CALL]}]
        for row in _rates(raw["savingsPlanId"], filters):
            props = {p["name"]: p["value"] for p in row.get("properties", [])}
            tenancy = "default" if props.get("tenancy", "shared") == "shared" else props["tenancy"]
            rates[(props.get("instanceType", ""), props.get("productDescription", "Linux/UNIX"), tenancy)] = \
                float(row["rate"])
    return replace(plan_terms(raw), rates=rates)


def plan_terms(raw: Mapping[str, Any]) -> SavingsPlan:
    """A plan as DescribeSavingsPlans describes it, without its rates (DescribeSavingsPlanRates)."""
    end = raw.get("end")
    return SavingsPlan(raw["savingsPlanId"], raw["savingsPlanType"], float(raw["commitment"]), {},
                       raw.get("ec2InstanceFamily") or None, raw.get("region") or None,
                       datetime.fromisoformat(end.replace("Z", "+00:00")) if end else None, raw.get("state", "active"))


def running_on_demand() -> list[dict[str, Any]]:
    return [i for i in raw_instances([{"Name": "instance-state-name", "Values": ["running"]}])
            if not i.get("InstanceLifecycle")]


def priorities(groups: Iterable[Group]) -> dict[str, int]:
    """instance id -> who consumes first: members of opted-in groups that use commitments, then those that
    ignore them; everything else is OUTSIDE (a malformed policy counts as outside: the scanner skips it)."""
    found: dict[str, int] = {}
    for group in groups:
        try:
            uses = parse_policy(group.name, group.tags, default_grace_period=0).uses_commitments
        except PolicyError:
            continue
        for member in group.members:
            found[member.instance_id] = OPTED_IN if uses else IGNORING
    return found


PriceOf = Callable[[str, str], float | None]  # (instance type, platform) -> on-demand $/h, None when unknown


def _price_books(region: str) -> PriceOf:
    """On-demand prices through the Pricing API (kept a day by the container), the bundled snapshot behind it."""
    books: dict[str, PriceBook] = {}

    def price(instance_type: str, platform: str) -> float | None:
        try:
            book = books.setdefault(platform, PriceBook(region, operating_system(platform)))
            return book.on_demand(instance_type).price
        except InvalidInput:  # no price for this OS or type
            return None

    return price


@dataclass(frozen=True)
class FleetCoverage:
    coverage: Coverage
    prices: dict[str, float]  # on-demand $/h by instance type (Linux/UNIX list price)
    # what the allocation was made from, so a manual replacement can ask what taking one instance away strands
    usages: tuple[Usage, ...] = ()
    reserved: tuple[ReservedInstance, ...] = ()
    plans: tuple[SavingsPlan, ...] = ()
    at: datetime | None = None
    savings_plan_reserve: float = 0.0

    def kept(self) -> dict[str, str]:
        return {i: why for i in self.coverage.instances if (why := self.coverage.why_kept(i))}

    def stranded_by(self, instance_id: str) -> str | None:
        """Why replacing this on-demand with a spot would leave a commitment paid for and idle (None: it would
        not). tasks.core.commitments.stranded_by."""
        return stranded_by(self.usages, self.reserved, self.plans, self.at or datetime.now(UTC), instance_id,
                           savings_plan_reserve=self.savings_plan_reserve)


def fleet_coverage(groups: Iterable[Group], *, extra_types: Iterable[str] = (), now: datetime | None = None,
                   settings: CommitmentSettings | None = None,
                   region: str | None = None, price_of: PriceOf | None = None) -> FleetCoverage | None:
    """The coverage of every running on-demand instance of the region, or None when awareness is off or there is
    no active commitment. `extra_types`: types rates are wanted for beyond those running (reverse-swap targets).
    `region`/`price_of`: the CLI passes its own session's and its price sheet (and its clients, through
    tasks.aws.clients.clients_from)."""
    settings = settings or Commitments.from_env().settings
    if not settings.enabled:
        return None
    region = region or Region.from_env().name
    reserved, raw_plans = _read(region)
    if not reserved and not raw_plans:
        return None
    order = priorities(groups)
    raw_usage = running_on_demand()
    types = sorted({i["InstanceType"] for i in raw_usage} | set(extra_types))
    price = price_of or _price_books(region)
    prices: dict[str, float] = {}
    usages = []
    for raw in raw_usage:
        platform = raw.get("PlatformDetails") or "Linux/UNIX"
        found = price(raw["InstanceType"], platform)  # None: it can still be covered; it ranks last for plans
        if platform == "Linux/UNIX" and found is not None:
            prices[raw["InstanceType"]] = found
        usages.append(Usage(raw["InstanceId"], raw["InstanceType"], raw["Placement"]["AvailabilityZone"],
                            found or 0.0, platform, raw["Placement"].get("Tenancy", "default"),
                            order.get(raw["InstanceId"], OUTSIDE), str(raw.get("LaunchTime", ""))))
    for instance_type in set(extra_types) - set(prices):
        if (found := price(instance_type, "Linux/UNIX")) is not None:
            prices[instance_type] = found
    plans = [_plan_from(p, region, types) for p in raw_plans]
    at = now or datetime.now(UTC)
    coverage = cover(usages, reserved, plans, at, savings_plan_reserve=settings.savings_plan_reserve)
    return FleetCoverage(coverage, prices, tuple(usages), tuple(reserved), tuple(plans), at,
                         settings.savings_plan_reserve)


def manual_swap_strands(instance: Instance) -> str | None:
    """Why swapping this on-demand to spot would leave a commitment paid for and idle, read as the scanner reads
    (every opted-in group, the region's usage); None when nothing would be stranded. The commitments come first
    (kept by the container): when none could pay for this instance at all (tasks.core.commitments
    could_be_covered), the verdict is None without reading the fleet."""
    settings = Commitments.from_env().settings
    if not settings.enabled:
        return None
    region = Region.from_env().name
    reserved, raw_plans = _read(region)
    usage = Usage(instance.instance_id, instance.instance_type, instance.availability_zone, 0.0,
                  instance.platform_details or "Linux/UNIX", instance.tenancy)
    if not could_be_covered(usage, reserved, [plan_terms(p) for p in raw_plans], datetime.now(UTC)):
        return None
    fleet = fleet_coverage([group_from_response(g) for g in opted_in_groups()], settings=settings, region=region)
    return fleet.stranded_by(instance.instance_id) if fleet else None


def reverse_swaps(fleet: FleetCoverage, groups: list[Group], instances: Mapping[str, Instance],
                  running: Iterable[str], skipped: Iterable[str], now: datetime,
                  cooling_on_demand: Iterable[Pool] = ()) -> tuple[list[ReversePick], list[ReverseSkip]]:
    """The spots to swap back to on-demand this scan (and why others wait); records when commitments went idle.
    A RUNNING execution whose instance is a spot counts as a swap back in flight (rebalances do too: waiting a
    scan costs little). `cooling_on_demand`: the on-demand pools on cooldown (tasks.aws.coordination)."""
    previous = idle_records()
    since = track_idle(fleet.coverage, previous, now.timestamp())
    save_idle_records(since, previous, now.timestamp())
    in_flight = executions_by_group(groups, set(running))
    busy = {name for name, executions in in_flight.items() if executions}
    reverse_running = any((i := instance_of(name)) and (inst := instances.get(i)) is not None
                          and inst.lifecycle == "spot" for name in running)
    spots = spot_facts(groups, instances, fleet.prices, set(skipped))
    return plan_reverse(fleet.coverage, spots, idle_since=since, now=now.timestamp(), groups_in_flight=busy,
                        reverse_in_flight=bool(reverse_running), cooling_on_demand=frozenset(cooling_on_demand))
