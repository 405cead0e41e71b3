"""Selection rules on plain data: which on-demand instances a scan replaces, and the exact reason for every skip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.core.model import Group, Instance, Member
from tasks.core.naming import execution_name
from tasks.core.policy import parse_policy
from tasks.core.selection import (
    ACTIVE_STATES,
    REPLACE,
    SKIP,
    decide_launched,
    executions_by_group,
    select,
)
from tasks.core.tags import OPT_IN

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def iid(n: int) -> str:
    return f"i-{n:017x}"


def member(n: int, state: str = "InService", protected: bool = False) -> Member:
    return Member(iid(n), state, protected=protected, availability_zone="us-east-1a", instance_type="m5.large")


def instance(n: int, age: int = 3600, lifecycle: str | None = None, state: str = "running") -> Instance:
    launched = (NOW - timedelta(seconds=age)).isoformat()
    return Instance(iid(n), state, "m5.large", "subnet-1", "us-east-1a", lifecycle=lifecycle, launch_time=launched)


def group(name: str = "web", members: tuple[Member, ...] = (), desired: int | None = None, **tags: str) -> Group:
    return Group(
        name=name, desired=len([m for m in members if m.lifecycle_state in ACTIVE_STATES]) if desired is None
        else desired, min_size=0, max_size=10, tags={OPT_IN: "true", **tags}, members=members,
        launch_template_id="lt-1", health_check_grace_period=0,
    )


def fleet(count: int, **tags: str) -> tuple[Group, dict[str, Instance]]:
    """`count` on-demand members; instance n is older than n+1."""
    members = tuple(member(n) for n in range(count))
    return group(members=members, **tags), {iid(n): instance(n, age=10_000 - n) for n in range(count)}


def actions(plan) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {v.instance_id: (v.action, v.why) for v in plan.verdicts}


def test_default_policy_replaces_the_oldest_one() -> None:
    g, instances = fleet(3)
    plan = select([g], instances, set(), NOW)
    assert [v.instance_id for v in plan.picks] == [iid(0)]
    assert actions(plan)[iid(0)] == (REPLACE, "oldest eligible on-demand (launched 2026-01-31T09:13:20Z); "
                                              "3 on-demand for floor 0, 0/1 swaps in flight")
    assert actions(plan)[iid(1)] == (SKIP, "MaxParallel 1 reached (0 in flight, 1 picked now)")
    assert plan.skipped_groups == ()


def test_max_parallel_counts_running_executions_of_the_group() -> None:
    g, instances = fleet(5, **{"AsgOptimiser:MaxParallel": "3"})
    running = {execution_name("web", iid(0), NOW)}  # one swap in flight for a member
    plan = select([g], instances, running, NOW)
    assert [v.instance_id for v in plan.picks] == [iid(1), iid(2)]
    assert actions(plan)[iid(0)] == (SKIP, f"already being replaced by execution {execution_name('web', iid(0), NOW)}")
    assert actions(plan)[iid(3)] == (SKIP, "MaxParallel 3 reached (1 in flight, 2 picked now)")


def test_a_swap_whose_on_demand_already_left_still_counts_by_name() -> None:
    g, instances = fleet(2, **{"AsgOptimiser:MaxParallel": "2"})
    gone = execution_name("web", iid(99), NOW)  # retiring: its on-demand is no longer a member
    other_group = execution_name("api", iid(98), NOW)
    plan = select([g], instances, {gone, other_group}, NOW)
    assert [v.instance_id for v in plan.picks] == [iid(0)]
    assert actions(plan)[iid(1)] == (SKIP, "MaxParallel 2 reached (1 in flight, 1 picked now)")


def test_long_group_names_are_matched_after_the_cut() -> None:
    long_name = "payments-" + "x" * 80
    g = group(long_name, members=(member(1),))
    cut = execution_name(long_name, iid(99), NOW)
    assert len(cut) == 80
    assert executions_by_group([g, group("other")], {cut, "not-ours"}) == {long_name: {cut}, "other": set()}


@pytest.mark.parametrize(
    ("tags", "desired", "picks", "why"),
    [
        ({"AsgOptimiser:MinOnDemand": "2"}, 4, 2,
         "on-demand floor 2 reached (MinOnDemand 2, MinOnDemandPercent 0% of desired 4): "
         "4 on-demand not being replaced, 2 picked now"),
        ({"AsgOptimiser:MinOnDemandPercent": "30"}, 4, 2,  # 1.2 rounds up to 2
         "on-demand floor 2 reached (MinOnDemand 0, MinOnDemandPercent 30% of desired 4): "
         "4 on-demand not being replaced, 2 picked now"),
        ({"AsgOptimiser:MinOnDemandPercent": "25", "AsgOptimiser:MinOnDemand": "3"}, 4, 1,
         "on-demand floor 3 reached (MinOnDemand 3, MinOnDemandPercent 25% of desired 4): "
         "4 on-demand not being replaced, 1 picked now"),
        ({"AsgOptimiser:MinOnDemandPercent": "100"}, 4, 0,
         "on-demand floor 4 reached (MinOnDemand 0, MinOnDemandPercent 100% of desired 4): "
         "4 on-demand not being replaced, 0 picked now"),
    ],
)
def test_on_demand_floor(tags: dict[str, str], desired: int, picks: int, why: str) -> None:
    g, instances = fleet(desired, **{"AsgOptimiser:MaxParallel": "10", **tags})
    plan = select([g], instances, set(), NOW)
    assert len(plan.picks) == picks
    assert actions(plan)[iid(desired - 1)] == (SKIP, why)


def test_floor_counts_swaps_in_flight_as_already_gone_and_spot_as_not_on_demand() -> None:
    members = tuple(member(n) for n in range(5))
    g = group(members=members, **{"AsgOptimiser:MaxParallel": "10", "AsgOptimiser:MinOnDemand": "1"})
    instances = {iid(n): instance(n, age=10_000 - n) for n in range(4)} | {iid(4): instance(4, lifecycle="spot")}
    plan = select([g], instances, {execution_name("web", iid(0), NOW)}, NOW)
    # 4 on-demand, 1 being replaced -> 3 left, floor 1 -> 2 more may go
    assert [v.instance_id for v in plan.picks] == [iid(1), iid(2)]
    assert actions(plan)[iid(4)] == (SKIP, "already spot")


@pytest.mark.parametrize(
    ("mem", "inst", "why"),
    [
        (member(1, protected=True), instance(1), "protected from scale-in"),
        (member(1, state="Standby"), instance(1), "Standby, not InService"),
        (member(1), instance(1, state="stopping"), "EC2 state stopping, not running"),
        (member(1), instance(1, lifecycle="spot"), "already spot"),
        (member(1), None, "not found in EC2"),
        (member(1), instance(1, age=100), "in grace period: launched 100s ago, grace period 300s"),
    ],
)
def test_never_picks(mem: Member, inst: Instance | None, why: str) -> None:
    g = group(members=(mem,), desired=1 if mem.lifecycle_state in ACTIVE_STATES else 0,
              **{"AsgOptimiser:GracePeriod": "300"})
    plan = select([g], {iid(1): inst} if inst else {}, set(), NOW)
    assert actions(plan) == {iid(1): (SKIP, why)}


def test_grace_period_defaults_to_the_groups_and_the_tag_overrides_it() -> None:
    g = Group("web", 1, 0, 2, {OPT_IN: "true"}, (member(1),), launch_template_id="lt-1", health_check_grace_period=600)
    young = {iid(1): instance(1, age=599)}
    assert actions(select([g], young, set(), NOW))[iid(1)] == (
        SKIP, "in grace period: launched 599s ago, grace period 600s")
    assert select([g], {iid(1): instance(1, age=600)}, set(), NOW).picks
    tagged = Group("web", 1, 0, 2, {OPT_IN: "true", "AsgOptimiser:GracePeriod": "0"}, (member(1),),
                   launch_template_id="lt-1", health_check_grace_period=600)
    assert select([tagged], young, set(), NOW).picks


@pytest.mark.parametrize(
    ("window", "hour", "skipped"),
    [("22-06", 23, None), ("22-06", 3, None), ("22-06", 6, "outside window 22-06 UTC (now 06:00 UTC)"),
     ("22-06", 12, "outside window 22-06 UTC (now 12:00 UTC)"), ("9-17", 12, None),
     ("9-17", 17, "outside window 09-17 UTC (now 17:00 UTC)")],
)
def test_window(window: str, hour: int, skipped: str | None) -> None:
    g, instances = fleet(1, **{"AsgOptimiser:Window": window})
    plan = select([g], instances, set(), NOW.replace(hour=hour) + timedelta(days=1))
    if skipped:
        assert [(s.asg_name, s.why) for s in plan.skipped_groups] == [("web", skipped)]
        assert plan.verdicts == ()
    else:
        assert len(plan.picks) == 1


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"status": "Delete in progress"}, "ASG status is 'Delete in progress': an update is pending"),
        ({"launch_template_id": None}, "no launch template (launch configurations are not supported)"),
        ({"desired": 3}, "scaling in progress: 2 instances Pending or InService for desired capacity 3"),
        ({"members": (member(0), member(1, "Pending"))},
         "scaling in progress: 1 instances Pending or InService for desired capacity 2"),
        ({"tags": {OPT_IN: "True"}}, "not opted in: tag AsgOptimiser is 'True', expected 'true'"),
        ({"tags": {}}, "not opted in: tag AsgOptimiser is missing, expected 'true'"),
        ({"tags": {OPT_IN: "true", "AsgOptimiser:MaxParallel": "lots"}},
         "ASG web: tag AsgOptimiser:MaxParallel='lots' is malformed: expected a whole number 1 or more"),
    ],
)
def test_group_level_skips(change: dict[str, object], why: str) -> None:
    from dataclasses import replace

    g, instances = fleet(2)
    if "members" in change:  # one of two members still launching: desired 2, one counted as active
        change = {**change, "members": (member(0), member(1, "Terminating"))}
    plan = select([replace(g, **change)], instances, set(), NOW)  # type: ignore[arg-type]
    assert [(s.asg_name, s.why) for s in plan.skipped_groups] == [("web", why)]
    assert plan.verdicts == ()


def test_a_malformed_group_does_not_affect_the_others() -> None:
    good, instances = fleet(2)
    bad = group("bad", members=(member(50),), **{"AsgOptimiser:Window": "night"})
    plan = select([bad, good], {**instances, iid(50): instance(50)}, set(), NOW)
    assert [(s.asg_name, s.malformed) for s in plan.skipped_groups] == [("bad", True)]
    assert [v.instance_id for v in plan.picks] == [iid(0)]


def test_busy_groups_are_skipped_with_the_callers_reason() -> None:
    g, instances = fleet(2)
    plan = select([g], instances, set(), NOW, busy={"web": "instance refresh r-1 is InProgress"})
    assert [(s.asg_name, s.why) for s in plan.skipped_groups] == [("web", "instance refresh r-1 is InProgress")]


def test_every_member_gets_exactly_one_verdict_in_member_order() -> None:
    g, instances = fleet(4)
    plan = select([g], instances, set(), NOW)
    assert [v.instance_id for v in plan.verdicts] == [iid(n) for n in range(4)]


def test_launch_event_waits_out_the_grace_and_treats_pending_members_as_launched() -> None:
    members = (member(0), member(1, "Pending"))
    g = group(members=members, **{"AsgOptimiser:GracePeriod": "300", "AsgOptimiser:MaxParallel": "2"})
    instances = {iid(0): instance(0, age=50), iid(1): instance(1, age=20)}
    verdict, delay = decide_launched(g, instances, set(), NOW, iid(1))
    assert (verdict.action, delay) == (REPLACE, 280)
    assert verdict.why.startswith("oldest eligible on-demand (launched 2026-01-31T11:59:40Z)")


@pytest.mark.parametrize(
    ("tags", "running", "why"),
    [
        ({}, set(), "MaxParallel 1 reached (0 in flight, 1 picked now)"),  # the older one goes first
        ({"AsgOptimiser:MaxParallel": "2", "AsgOptimiser:MinOnDemand": "1"}, set(),
         "on-demand floor 1 reached (MinOnDemand 1, MinOnDemandPercent 0% of desired 2): "
         "2 on-demand not being replaced, 1 picked now"),
        ({"AsgOptimiser:Window": "0-6"}, set(), "outside window 00-06 UTC (now 12:01 UTC)"),
    ],
)
def test_launch_event_obeys_the_same_policy(tags: dict[str, str], running: set[str], why: str) -> None:
    g = group(members=(member(0), member(1)), **{"AsgOptimiser:GracePeriod": "60", **tags})
    instances = {iid(0): instance(0, age=4000), iid(1): instance(1, age=0)}
    verdict, delay = decide_launched(g, instances, running, NOW, iid(1))
    assert (verdict.action, verdict.why, delay) == (SKIP, why, 0)


def test_launch_event_for_a_non_member() -> None:
    verdict, _ = decide_launched(group(members=(member(0),)), {}, set(), NOW, iid(7))
    assert (verdict.action, verdict.why) == (SKIP, "not a member of ASG web")


_states = st.sampled_from(["InService", "InService", "InService", "Pending", "Standby", "Terminating"])


@st.composite
def fleets(draw: st.DrawFn) -> tuple[Group, dict[str, Instance], set[str]]:
    count = draw(st.integers(0, 12))
    members, instances = [], {}
    for n in range(count):
        state = draw(_states)
        members.append(member(n, state=state, protected=draw(st.booleans()) and draw(st.booleans())))
        lifecycle = draw(st.sampled_from([None, None, "spot"]))
        instances[iid(n)] = instance(n, age=draw(st.integers(0, 5000)), lifecycle=lifecycle,
                                     state=draw(st.sampled_from(["running", "running", "stopped"])))
    tags = {
        "AsgOptimiser:MaxParallel": str(draw(st.integers(1, 5))),
        "AsgOptimiser:MinOnDemand": str(draw(st.integers(0, 6))),
        "AsgOptimiser:MinOnDemandPercent": str(draw(st.integers(0, 100))),
        "AsgOptimiser:GracePeriod": str(draw(st.integers(0, 3000))),
    }
    active = sum(m.lifecycle_state in ACTIVE_STATES for m in members)
    g = group(members=tuple(members), desired=active, **tags)
    replaced = draw(st.sets(st.integers(0, 15), max_size=4))
    return g, instances, {execution_name("web", iid(n), NOW) for n in replaced}


@settings(max_examples=300, deadline=None)
@given(fleets())
def test_selection_never_breaks_the_policy(case: tuple[Group, dict[str, Instance], set[str]]) -> None:
    g, instances, running = case
    plan = select([g], instances, running, NOW)
    assert plan.skipped_groups == ()  # desired always matches the active members here
    policy = parse_policy("web", g.tags, default_grace_period=0)
    picks = {v.instance_id for v in plan.picks}
    in_flight = executions_by_group([g], running)["web"]
    replacing = {n.split("-i-")[1].split("-")[0] for n in running}
    assert len(picks) <= max(0, policy.max_parallel - len(in_flight))
    on_demand_left = sum(
        1 for m in g.members
        if m.lifecycle_state in ACTIVE_STATES and instances[m.instance_id].on_demand
        and m.instance_id[2:] not in replacing
    )
    assert not picks or on_demand_left - len(picks) >= policy.on_demand_floor(g.desired)
    assert [v.instance_id for v in plan.verdicts] == [m.instance_id for m in g.members]
    for pick in picks:
        m, i = g.member(pick), instances[pick]
        assert m is not None and m.in_service and not m.protected and i.on_demand and i.state == "running"
        assert pick[2:] not in replacing
        assert (NOW - datetime.fromisoformat(i.launch_time or "")).total_seconds() >= policy.grace_period
    if picks:  # the oldest go first: nothing eligible-but-skipped is older than a pick
        newest_pick = max(instances[p].launch_time or "" for p in picks)
        for v in plan.verdicts:
            if v.action == SKIP and v.why.startswith(("MaxParallel", "on-demand floor")):
                assert (instances[v.instance_id].launch_time or "") >= newest_pick


@given(on_demand=st.integers(0, 6), spot=st.integers(0, 6), floor=st.integers(0, 8), parallel=st.integers(1, 8))
def test_the_scanner_never_takes_a_group_below_its_floor_nor_further_below(on_demand: int, spot: int, floor: int,
                                                                           parallel: int) -> None:
    """A group below its floor (a forced manual swap, instances removed by someone else) gets no pick at all."""
    members = tuple(member(n) for n in range(on_demand + spot))
    instances = {iid(n): instance(n, age=10_000 - n, lifecycle="spot" if n >= on_demand else None)
                 for n in range(on_demand + spot)}
    g = group(members=members, **{"AsgOptimiser:MinOnDemand": str(floor), "AsgOptimiser:MaxParallel": str(parallel)})
    picks = len(select([g], instances, set(), NOW).picks)
    assert on_demand - picks >= min(on_demand, floor)
    if on_demand <= floor:
        assert picks == 0
