"""The coverage model on plain data: AWS's order for RIs and Savings Plans, outside usage first, idle commitment,
and the reverse-swap hysteresis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.core.commitment_swaps import SpotFact, plan_reverse, track_idle
from tasks.core.commitments import (
    COMPUTE,
    EC2_INSTANCE,
    IGNORING,
    OPTED_IN,
    OUTSIDE,
    RI,
    SAVINGS_PLAN,
    ZONAL,
    ReservedInstance,
    SavingsPlan,
    Usage,
    could_be_covered,
    cover,
    hourly_cost,
    normalization_factor,
    platform_of,
    stranded_by,
)
from tasks.core.prices import Pool

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
PRICES = {"m5.large": 0.096, "m5.xlarge": 0.192, "m5.2xlarge": 0.384, "c5.large": 0.085, "c5.xlarge": 0.17}


def use(n: int, instance_type: str = "m5.large", zone: str = "us-east-1a", priority: int = OPTED_IN,
        platform: str = "Linux/UNIX", tenancy: str = "default", age: int = 0) -> Usage:
    return Usage(f"i-{n:017x}", instance_type, zone, PRICES.get(instance_type, 0.1), platform, tenancy, priority,
                 (NOW - timedelta(seconds=3600 + age)).isoformat())


def zonal(rid: str, instance_type: str, zone: str, count: int = 1, **kw: object) -> ReservedInstance:
    return ReservedInstance(rid, instance_type, count, ZONAL, zone, hourly_cost=0.06, **kw)  # type: ignore[arg-type]


def regional(rid: str, instance_type: str, count: int = 1, **kw: object) -> ReservedInstance:
    return ReservedInstance(rid, instance_type, count, hourly_cost=0.06, **kw)  # type: ignore[arg-type]


def plan(pid: str, kind: str, commitment: float, discount: float, family: str | None = None) -> SavingsPlan:
    rates = {(t, "Linux/UNIX", "default"): round(p * (1 - discount), 6) for t, p in PRICES.items()
             if family is None or t.startswith(family + ".")}
    return SavingsPlan(pid, kind, commitment, rates, instance_family=family, region="us-east-1")


@pytest.mark.parametrize(("instance_type", "factor"), [
    ("t3.nano", 0.25), ("t3.micro", 0.5), ("t3.small", 1), ("t3.medium", 2), ("m5.large", 4), ("m5.xlarge", 8),
    ("m5.2xlarge", 16), ("m5.24xlarge", 192), ("x1.32xlarge", 256), ("m7i.metal-24xl", 192), ("u-6tb1.metal", None),
])
def test_normalization_factors_are_awss(instance_type: str, factor: float | None) -> None:
    assert normalization_factor(instance_type) == factor


def test_metal_has_the_factor_of_its_familys_largest_size() -> None:
    assert normalization_factor("m5.metal", ["m5.large", "m5.24xlarge", "c5.24xlarge"]) == 192
    assert normalization_factor("m5.metal") is None


def test_ri_product_description_vpc_suffix_means_the_same_platform() -> None:
    assert platform_of("Linux/UNIX (Amazon VPC)") == "Linux/UNIX"
    assert platform_of("Windows (Amazon VPC)") == "Windows"


def test_zonal_ri_covers_exactly_its_az_and_type() -> None:
    usages = [use(1), use(2, zone="us-east-1b"), use(3, "m5.xlarge"), use(4)]
    coverage = cover(usages, [zonal("ri-zonal-a", "m5.large", "us-east-1a")], [], NOW)
    covered = {i for i, c in coverage.instances.items() if c.covered}
    assert len(covered) == 1 and covered <= {usages[0].instance_id, usages[3].instance_id}
    assert not coverage.of(usages[1].instance_id).shares  # type: ignore[union-attr]  # other zone
    assert not coverage.of(usages[2].instance_id).shares  # type: ignore[union-attr]  # other size: zonal is exact
    assert coverage.commitment("ri-zonal-a").idle == 0  # type: ignore[union-attr]


def test_zonal_ri_covers_the_newest_opted_in_instance_so_the_oldest_is_swapped_first() -> None:
    old, new = use(1, age=7200), use(2, age=0)
    coverage = cover([old, new], [zonal("ri-zonal-a", "m5.large", "us-east-1a")], [], NOW)
    assert coverage.of(new.instance_id).covered and not coverage.of(old.instance_id).covered  # type: ignore[union-attr]


def test_regional_size_flexible_ri_covers_two_large_with_one_xlarge_units() -> None:
    usages = [use(1, zone="us-east-1a"), use(2, zone="us-east-1c")]
    coverage = cover(usages, [regional("ri-flex", "m5.xlarge")], [], NOW)
    assert all(c.covered for c in coverage.instances.values())
    ri = coverage.commitment("ri-flex")
    assert (ri.capacity, ri.used, ri.unit, ri.in_use()) == (8, 8, "units", "1 of 1 in use")  # type: ignore[union-attr]


def test_size_flexible_ri_applies_smallest_size_first_and_covers_a_bigger_one_in_part() -> None:
    large, big = use(1, "m5.large"), use(2, "m5.2xlarge")
    coverage = cover([big, large], [regional("ri-flex", "m5.xlarge")], [], NOW)
    assert coverage.of(large.instance_id).covered  # type: ignore[union-attr]
    assert coverage.of(big.instance_id).fraction == pytest.approx(0.25)  # type: ignore[union-attr]  # 4 of 16 units
    assert coverage.of(big.instance_id).marginal_cost == pytest.approx(0.288)  # type: ignore[union-attr]


def test_windows_and_dedicated_regional_ris_are_not_size_flexible() -> None:
    windows = use(1, "m5.large", platform="Windows")
    dedicated = use(2, "m5.large", tenancy="dedicated")
    ris = [regional("ri-win", "m5.xlarge", platform="Windows"), regional("ri-ded", "m5.xlarge", tenancy="dedicated")]
    coverage = cover([windows, dedicated], ris, [], NOW)
    assert not any(c.shares for c in coverage.instances.values())
    exact = cover([use(3, "m5.xlarge", platform="Windows", zone="us-east-1f")], ris, [], NOW)
    assert all(c.covered for c in exact.instances.values())  # regional: any zone, exact type and platform


def test_non_asg_instances_consume_an_ri_first() -> None:
    ours, theirs = use(1, priority=OPTED_IN, age=0), use(2, priority=OUTSIDE, age=9999)
    coverage = cover([ours, theirs], [zonal("ri-zonal-a", "m5.large", "us-east-1a")], [], NOW)
    assert coverage.of(theirs.instance_id).covered  # type: ignore[union-attr]
    assert not coverage.of(ours.instance_id).shares  # type: ignore[union-attr]


def test_groups_that_ignore_commitments_are_covered_last() -> None:
    ignoring, using = use(1, priority=IGNORING, age=0), use(2, priority=OPTED_IN, age=9999)
    coverage = cover([ignoring, using], [zonal("ri-zonal-a", "m5.large", "us-east-1a")], [], NOW)
    assert coverage.of(using.instance_id).covered  # type: ignore[union-attr]


def test_ri_and_ec2_instance_sp_and_compute_sp_together_in_awss_order() -> None:
    usages = [use(1, "m5.large"), use(2, "m5.large"), use(3, "c5.large"), use(4, "m5.xlarge")]
    ris = [zonal("ri-zonal-a", "m5.large", "us-east-1a")]
    ec2_sp = plan("sp-ec2", EC2_INSTANCE, 0.2, discount=0.40, family="m5")  # m5 only
    compute = plan("sp-compute", COMPUTE, 0.06, discount=0.30)
    coverage = cover(usages, ris, [compute, ec2_sp], NOW)
    kinds = {u.instance_type + str(n): [s.commitment_id for s in coverage.of(u.instance_id).shares]  # type: ignore[union-attr]
             for n, u in enumerate(usages)}
    # 1. the zonal RI takes one m5.large (the newest); 2. the EC2 Instance plan (m5 only) takes the other m5.large
    # ($0.0576) and the m5.xlarge ($0.1152), $0.1728 of $0.20; 3. Compute takes the c5.large ($0.0595 of $0.06).
    assert sorted(kinds.values()) == [["ri-zonal-a"], ["sp-compute"], ["sp-ec2"], ["sp-ec2"]]
    assert kinds["c5.large2"] == ["sp-compute"]
    assert all(c.covered for c in coverage.instances.values())
    assert coverage.commitment("sp-ec2").idle == pytest.approx(0.2 - 0.0576 - 0.1152)  # type: ignore[union-attr]
    assert coverage.commitment("sp-compute").in_use() == "commitment $0.06/h, $0.00/h idle"  # type: ignore[union-attr]


def test_savings_plan_covers_the_highest_discount_first_then_runs_out() -> None:
    m5, c5 = use(1, "m5.large"), use(2, "c5.large")
    rates = {("m5.large", "Linux/UNIX", "default"): 0.048, ("c5.large", "Linux/UNIX", "default"): 0.068}  # 50 %, 20 %
    coverage = cover([c5, m5], [], [SavingsPlan("sp-1", COMPUTE, 0.06, rates)], NOW)
    assert coverage.of(m5.instance_id).covered  # type: ignore[union-attr]
    assert coverage.of(c5.instance_id).fraction == pytest.approx(0.012 / 0.068)  # type: ignore[union-attr]


def test_expired_ri_stops_covering() -> None:
    ri = zonal("ri-zonal-a", "m5.large", "us-east-1a", end=NOW - timedelta(seconds=1))
    assert not cover([use(1)], [ri], [], NOW).of(use(1).instance_id).shares  # type: ignore[union-attr]
    retired = zonal("ri-zonal-b", "m5.large", "us-east-1a", state="retired")
    assert not cover([use(1)], [retired], [], NOW).commitments


def test_savings_plan_reserve_is_left_for_other_usage() -> None:
    coverage = cover([use(1)], [], [plan("sp-1", COMPUTE, 0.1, discount=0.5)], NOW, savings_plan_reserve=0.06)
    assert coverage.of(use(1).instance_id).fraction == pytest.approx(0.04 / 0.048)  # type: ignore[union-attr]
    assert coverage.commitment("sp-1").idle == pytest.approx(0.06)  # type: ignore[union-attr]  # held, not spent


def test_why_kept_names_the_ri_zone_and_use() -> None:
    usages = [use(n) for n in range(1, 4)]
    coverage = cover(usages, [zonal("1a2b3c4d-aaaa-bbbb", "m5.large", "us-east-1a", count=4)], [], NOW)
    assert coverage.why_kept(usages[0].instance_id) == (
        "kept on-demand: covered by RI 1a2b3c4d… (m5.large, us-east-1a, 3 of 4 in use)")
    assert coverage.commitment("1a2b3c4d-aaaa-bbbb").idle_per_hour == pytest.approx(0.06)  # type: ignore[union-attr]


def test_why_kept_names_the_savings_plan_commitment_and_idle() -> None:
    coverage = cover([use(1)], [], [plan("sp-0123456789abcdef", COMPUTE, 1.2, discount=0.5)], NOW)
    assert coverage.why_kept(use(1).instance_id) == (
        "kept on-demand: covered by Savings Plan sp-01234… (Compute, commitment $1.20/h, $1.15/h idle)")


def test_partly_covered_instance_is_not_kept_and_costs_its_uncovered_share() -> None:
    big = use(1, "m5.xlarge")
    coverage = cover([big], [regional("ri-flex", "m5.large")], [], NOW)
    assert coverage.why_kept(big.instance_id) is None
    assert hourly_cost(coverage, [big.instance_id]) == pytest.approx(0.096)


def test_commitment_aware_hourly_cost_counts_covered_on_demand_at_zero() -> None:
    usages = [use(1), use(2, "c5.large")]
    coverage = cover(usages, [zonal("ri-zonal-a", "m5.large", "us-east-1a")], [], NOW)
    assert hourly_cost(coverage, [u.instance_id for u in usages]) == pytest.approx(0.085)


usage_strategy = st.builds(
    lambda n, t, z, p, age: use(n, t, z, p, age=age),
    st.integers(1, 40), st.sampled_from(sorted(PRICES)), st.sampled_from(["us-east-1a", "us-east-1b"]),
    st.sampled_from([OUTSIDE, OPTED_IN, IGNORING]), st.integers(0, 9),
)
ri_strategy = st.one_of(
    st.builds(lambda n, t, z, c: zonal(f"ri-z{n}", t, z, c), st.integers(0, 5), st.sampled_from(sorted(PRICES)),
              st.sampled_from(["us-east-1a", "us-east-1b"]), st.integers(1, 3)),
    st.builds(lambda n, t, c: regional(f"ri-r{n}", t, c), st.integers(0, 5), st.sampled_from(sorted(PRICES)),
              st.integers(1, 3)),
)
plan_strategy = st.builds(lambda n, kind, c, d: plan(f"sp-{n}", kind, c, d, "m5" if kind == EC2_INSTANCE else None),
                          st.integers(0, 3), st.sampled_from([COMPUTE, EC2_INSTANCE]),
                          st.floats(0.01, 0.5), st.floats(0.1, 0.7))


@settings(max_examples=200, deadline=None)
@given(st.lists(usage_strategy, max_size=12, unique_by=lambda u: u.instance_id),
       st.lists(ri_strategy, max_size=4, unique_by=lambda r: r.reservation_id),
       st.lists(plan_strategy, max_size=3, unique_by=lambda p: p.plan_id))
def test_allocation_never_spends_more_than_a_commitment_holds_and_outside_usage_goes_first(
        usages: list[Usage], ris: list[ReservedInstance], plans: list[SavingsPlan]) -> None:
    coverage = cover(usages, ris, plans, NOW)
    for use_ in coverage.commitments:
        assert -1e-9 <= use_.used <= use_.capacity + 1e-9
    for found in coverage.instances.values():
        assert 0 <= found.fraction <= 1 + 1e-9
        assert all(s.kind in (RI, SAVINGS_PLAN) and s.fraction > 0 for s in found.shares)
    # A commitment spent on an opted-in instance means every outside instance it could cover is wholly covered.
    for found in coverage.instances.values():
        if found.usage.priority == OUTSIDE:
            continue
        for share in found.shares:
            for other in coverage.instances.values():
                if other.usage.priority == OUTSIDE and not other.covered:
                    probe = cover([other.usage], [r for r in ris if r.reservation_id == share.commitment_id],
                                  [p for p in plans if p.plan_id == share.commitment_id], NOW)
                    assert not probe.of(other.usage.instance_id).shares  # type: ignore[union-attr]


def spot(n: int, asg: str = "web", instance_type: str = "m5.large", zone: str = "us-east-1a") -> SpotFact:
    return SpotFact(f"i-{n:017x}", asg, instance_type, zone, PRICES[instance_type], "Linux/UNIX")


def test_reverse_swap_waits_for_the_commitment_to_stay_idle() -> None:
    coverage = cover([], [zonal("ri-zonal-a", "m5.large", "us-east-1a")], [], NOW)
    since = track_idle(coverage, {}, now=1000.0)
    assert since == {"ri-zonal-a": 1000.0}
    picks, skips = plan_reverse(coverage, [spot(1)], idle_since=since, now=1000.0 + 60, groups_in_flight=(),
                                reverse_in_flight=False, min_idle_seconds=900)
    assert picks == [] and skips[0].why == ("stays spot for now: ri-zonal-a idle for 60s, under the 900s needed "
                                            "before a swap back")
    picks, _ = plan_reverse(coverage, [spot(1)], idle_since=since, now=1000.0 + 900, groups_in_flight=(),
                            reverse_in_flight=False, min_idle_seconds=900)
    assert [(p.instance_id, p.instance_type) for p in picks] == [(spot(1).instance_id, "m5.large")]
    assert picks[0].why == ("back to on-demand m5.large: idle commitment pays for it, RI ri-zonal-a (m5.large, "
                            "us-east-1a, 1 of 1 in use after)")


def test_reverse_swap_never_picks_a_spot_the_idle_commitment_would_cover_only_in_part() -> None:
    coverage = cover([], [regional("ri-flex", "m5.large")], [], NOW)
    since = {"ri-flex": 0.0}
    picks, skips = plan_reverse(coverage, [spot(1, instance_type="m5.xlarge"), spot(2, zone="us-east-1c")],
                                idle_since=since, now=5000.0, groups_in_flight=(), reverse_in_flight=False)
    assert [p.instance_id for p in picks] == [spot(2).instance_id] and skips == []


def test_reverse_swap_one_at_a_time_and_not_into_a_busy_group() -> None:
    coverage = cover([], [zonal("ri-zonal-a", "m5.large", "us-east-1a", count=3)], [], NOW)
    since = {"ri-zonal-a": 0.0}
    args = {"idle_since": since, "now": 5000.0}
    picks, skips = plan_reverse(coverage, [spot(1), spot(2)], groups_in_flight=(), reverse_in_flight=True, **args)
    assert not picks and {s.why for s in skips} == {
        "stays spot for now: a swap back to on-demand is in flight: one at a time"}
    picks, skips = plan_reverse(coverage, [spot(1, asg="api")], groups_in_flight={"api"}, reverse_in_flight=False,
                                **args)
    assert not picks and skips[0].why == "stays spot for now: a swap is in flight in the group"
    picks, skips = plan_reverse(coverage, [spot(1), spot(2)], groups_in_flight=(), reverse_in_flight=False, **args)
    assert len(picks) == 1 and skips[0].why == "stays spot for now: 1 swap(s) back per scan"


def test_reverse_swap_skips_a_cooling_on_demand_pool_and_takes_another_spot() -> None:
    """No on-demand capacity for a swap back cooled m5.large in us-east-1a: that spot waits and says why, the
    idle RI's other candidate (regional, any zone) goes instead; once the pool stops cooling the first goes."""
    coverage = cover([], [regional("ri-flex", "m5.large")], [], NOW)
    args = {"idle_since": {"ri-flex": 0.0}, "now": 5000.0, "groups_in_flight": (), "reverse_in_flight": False}
    spots = [spot(1), spot(2, zone="us-east-1b")]
    cooling = frozenset({Pool("m5.large", "us-east-1a")})
    picks, skips = plan_reverse(coverage, spots, cooling_on_demand=cooling, **args)
    assert [p.instance_id for p in picks] == [spot(2).instance_id]
    assert [(s.instance_id, s.why) for s in skips] == [(spot(1).instance_id, (
        "stays spot for now: on-demand m5.large in us-east-1a is cooling down after no on-demand capacity"))]
    coverage = cover([], [regional("ri-flex", "m5.large")], [], NOW)
    picks, skips = plan_reverse(coverage, spots, cooling_on_demand=frozenset(), **args)
    assert [p.instance_id for p in picks] == [spot(1).instance_id] and skips == []  # the RI is spent on it


def test_a_cooling_spot_pool_does_not_hold_a_swap_back() -> None:
    coverage = cover([], [zonal("ri-zonal-a", "m5.large", "us-east-1a")], [], NOW)
    picks, _ = plan_reverse(coverage, [spot(1)], idle_since={"ri-zonal-a": 0.0}, now=5000.0, groups_in_flight=(),
                            reverse_in_flight=False, cooling_on_demand=frozenset({Pool("m5.large", "us-east-1b")}))
    assert [p.instance_id for p in picks] == [spot(1).instance_id]


def test_no_flapping_across_three_consecutive_scans() -> None:
    """Scan 1 sees the idle RI, scan 2 (after the idle time) swaps a spot back, scan 3 sees the new on-demand
    covered: it is kept, nothing is idle, nothing swaps either way."""
    ri = zonal("ri-zonal-a", "m5.large", "us-east-1a")
    since: dict[str, float] = {}
    fleet_spots = [spot(1), spot(2)]
    on_demand: list[Usage] = []
    started = []
    for scan, at in enumerate((0.0, 1000.0, 2000.0), start=1):
        coverage = cover(on_demand, [ri], [], NOW)
        kept = [coverage.why_kept(u.instance_id) for u in on_demand]
        since = track_idle(coverage, since, at)
        picks, _ = plan_reverse(coverage, fleet_spots, idle_since=since, now=at, groups_in_flight=(),
                                reverse_in_flight=False, min_idle_seconds=900)
        started += [(scan, p.instance_id) for p in picks]
        for pick in picks:  # the swap completes before the next scan: the spot is gone, an on-demand serves
            fleet_spots = [s for s in fleet_spots if s.instance_id != pick.instance_id]
            on_demand.append(use(100 + scan, pick.instance_type))
        if scan == 3:
            assert kept == ["kept on-demand: covered by RI ri-zonal-a (m5.large, us-east-1a, 1 of 1 in use)"]
            assert since == {}
    assert started == [(2, spot(1).instance_id)]


STRANDS = [  # (usages, RIs, plans, the instance taken away, the line or None)
    ([use(1), use(2)], [zonal("ri-zonal-a", "m5.large", "us-east-1a", count=2)], [], 1,
     "paid for by RI ri-zonal-a (m5.large, us-east-1a, 2 of 2 in use): replacing it would leave $0.0600/h of it idle"),
    ([use(1), use(2)], [zonal("ri-zonal-a", "m5.large", "us-east-1a")], [], 2, None),  # the RI floats to i-1
    ([use(1), use(2, priority=OUTSIDE)], [zonal("ri-zonal-a", "m5.large", "us-east-1a")], [], 1, None),  # outside's
    ([use(1, zone="us-east-1b")], [zonal("ri-zonal-a", "m5.large", "us-east-1a")], [], 1, None),  # not its zone
    ([use(1), use(2, "m5.xlarge")], [regional("ri-flex", "m5.xlarge")], [], 1, None),  # the large first, 4 units:
    # taken away, the xlarge's 8 fill the RI's 8: nothing idle (size flexibility floats too)
    ([use(1)], [], [plan("sp-compute", COMPUTE, 0.05, 0.27)], 1,
     "paid for by Savings Plan sp-compute (Compute, commitment $0.05/h, $0.00/h idle): replacing it would leave "
     "$0.0500/h of it idle"),
]


@pytest.mark.parametrize(("usages", "reserved", "plans", "taken", "line"), STRANDS)
def test_a_swap_strands_a_commitment_only_when_its_idle_share_grows(usages: list[Usage],
                                                                     reserved: list[ReservedInstance],
                                                                     plans: list[SavingsPlan], taken: int,
                                                                     line: str | None) -> None:
    assert stranded_by(usages, reserved, plans, NOW, f"i-{taken:017x}") == line


COULD_COVER = [  # (usage, reserved, plans, could a commitment pay for it at all)
    (use(1), [zonal("ri-a", "m5.large", "us-east-1a")], [], True),
    (use(1, zone="us-east-1b"), [zonal("ri-a", "m5.large", "us-east-1a")], [], False),  # a zonal RI's zone only
    (use(1, "m5.xlarge"), [zonal("ri-a", "m5.large", "us-east-1a")], [], False),  # zonal: exact type
    (use(1, "m5.2xlarge", zone="us-east-1b"), [regional("ri-flex", "m5.large")], [], True),  # size-flexible
    (use(1, "c5.large"), [regional("ri-flex", "m5.large")], [], False),  # another family
    (use(1, "m5.xlarge", platform="Windows"), [regional("ri-flex", "m5.large")], [], False),
    (use(1, "m5.xlarge", tenancy="dedicated"), [regional("ri-flex", "m5.large")], [], False),
    (use(1, platform="Windows"), [regional("ri-win", "m5.large", platform="Windows")], [], True),  # exact type
    (use(1), [regional("ri-old", "m5.large", end=NOW - timedelta(hours=1))], [], False),  # expired
    (use(1, "c5.large"), [], [plan("sp-m5", EC2_INSTANCE, 0.05, 0.3, "m5")], False),  # the plan's family only
    (use(1, "m5.xlarge"), [], [plan("sp-m5", EC2_INSTANCE, 0.05, 0.3, "m5")], True),
    (use(1, "c5.large", platform="Windows"), [], [plan("sp-any", COMPUTE, 0.05, 0.3)], True),  # rates unread: could
    (use(1), [], [], False),
]


@pytest.mark.parametrize(("usage", "reserved", "plans", "could"), COULD_COVER)
def test_a_commitment_could_cover_only_usage_its_matching_rules_admit(usage: Usage, reserved: list[ReservedInstance],
                                                                      plans: list[SavingsPlan], could: bool) -> None:
    assert could_be_covered(usage, reserved, plans, NOW) is could


@settings(max_examples=300, deadline=None)
@given(usage_strategy, st.lists(usage_strategy, max_size=10, unique_by=lambda u: u.instance_id),
       st.lists(ri_strategy, max_size=4, unique_by=lambda r: r.reservation_id),
       st.lists(plan_strategy, max_size=3, unique_by=lambda p: p.plan_id))
def test_usage_no_commitment_could_cover_strands_nothing_and_takes_no_share(
        target: Usage, others: list[Usage], ris: list[ReservedInstance], plans: list[SavingsPlan]) -> None:
    """What lets a manual swap skip the fleet read: `could_be_covered` False means the full verdict is None."""
    usages = [target, *(u for u in others if u.instance_id != target.instance_id)]
    if not could_be_covered(target, ris, plans, NOW):
        assert stranded_by(usages, ris, plans, NOW, target.instance_id) is None
        assert not cover(usages, ris, plans, NOW).of(target.instance_id).shares  # type: ignore[union-attr]
