"""The coordination record's decisions, with plain values: what a section takes from a group, what it gives back,
and that concurrent holds compose (N takes then N give-backs leave the group as it was)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from tasks.core.coordination import (
    GroupRecord,
    Hold,
    Take,
    after_take,
    confirmed,
    item_fields,
    late_suspension,
    plan_give_back,
    plan_take,
    planned_from,
    read_is_current,
    record_from_item,
    retry_take,
    unconfirmed,
)
from tasks.core.model import Group, Member


def zoned(desired: int, a: int, b: int, max_size: int = 10, suspended: frozenset[str] = frozenset()) -> Group:
    members = tuple(Member(f"i-{z}{n:016x}", "InService", availability_zone=f"us-east-1{z}")
                    for z, count in (("a", a), ("b", b)) for n in range(count))
    return Group("web", desired, 0, max_size, members=members, zones=("us-east-1a", "us-east-1b"),
                 suspended=suspended)


def test_a_full_group_gets_one_slot_and_nothing_else() -> None:
    take = plan_take(zoned(2, 1, 1, max_size=2), raise_desired=False, zone="us-east-1b")
    assert (take.max_size, take.desired, take.suspend) == (3, None, ())
    assert take.hold == Hold(max_slots=1, planned_max=3)


def test_a_group_with_room_is_left_alone() -> None:
    take = plan_take(zoned(2, 1, 1), raise_desired=False, zone="us-east-1a")
    assert (take.max_size, take.desired, take.suspend, take.hold) == (None, None, (), Hold())


def test_an_attach_that_unbalances_the_zones_suspends_az_rebalance_unless_the_user_did() -> None:
    assert plan_take(zoned(2, 2, 0), raise_desired=False, zone="us-east-1a").suspend == ("AZRebalance",)
    assert plan_take(zoned(3, 1, 2), raise_desired=False, zone="us-east-1a").suspend == ()  # 2/2 after
    user = zoned(2, 2, 0, suspended=frozenset({"AZRebalance"}))
    assert plan_take(user, raise_desired=False, zone="us-east-1a").suspend == ()


def test_a_raise_sets_desired_plus_one_and_max_only_when_full() -> None:
    assert plan_take(zoned(2, 1, 1, max_size=4), raise_desired=True).hold == Hold(
        desired=1, planned_desired=3, planned_suspend=("AZRebalance",))
    full = plan_take(zoned(2, 1, 1, max_size=2), raise_desired=True)
    assert (full.max_size, full.desired) == (3, 3)


def test_a_retried_section_makes_no_write_twice() -> None:
    hold = Hold(max_slots=1, desired=1, planned_max=3, planned_desired=3)
    assert retry_take(zoned(2, 1, 1, max_size=2), hold).max_size == 3  # crashed before its write
    done = retry_take(zoned(3, 2, 1, max_size=3), hold)
    assert (done.max_size, done.desired) == (None, None)  # crashed after: nothing left to write


def test_a_section_retried_after_a_crash_right_after_its_max_write_still_suspends_and_owns_the_suspension() -> None:
    first = plan_take(zoned(2, 2, 0, max_size=2), raise_desired=False, zone="us-east-1a")
    assert first.hold.planned_suspend == ("AZRebalance",)
    crashed = zoned(2, 2, 0, max_size=3)  # MaxSize written, then the Lambda died before SuspendProcesses
    retry = retry_take(crashed, first.hold)
    assert (retry.max_size, retry.suspend) == (None, ("AZRebalance",))
    after = after_take(GroupRecord("web", exists=True), "x", retry, crashed, desired_after=3)
    assert after.suspended == {"AZRebalance"}
    suspended_already = retry_take(zoned(2, 2, 0, max_size=3, suspended=frozenset({"AZRebalance"})), first.hold)
    assert suspended_already.suspend == ()  # the crash came after SuspendProcesses: not again, still ours
    assert after_take(GroupRecord("web"), "x", suspended_already, crashed, desired_after=3).suspended == {
        "AZRebalance"}
    item = {"cooldown_key": "group#web", "hold#x": {k: v for k, v in vars(first.hold).items() if v is not None}}
    assert record_from_item("web", item).holds["x"] == first.hold


def test_a_read_before_the_lease_is_trusted_only_as_the_last_section_left_the_group() -> None:
    g = zoned(2, 1, 1, max_size=4)
    assert read_is_current(g, GroupRecord("web"))  # no section of ours ever changed it
    assert read_is_current(g, GroupRecord("web", left_desired=2, left_max=4, exists=True))
    assert not read_is_current(g, GroupRecord("web", left_desired=3, left_max=4, exists=True))


def test_give_back_leaves_a_max_size_someone_else_changed_and_says_so() -> None:
    record = GroupRecord("web", holds={"ex1": Hold(max_slots=1, planned_max=3)}, max_set_to=3, exists=True)
    give = plan_give_back(zoned(4, 2, 2, max_size=5), record, ["ex1"])
    assert give.max_size is None and give.record.holds == {}
    assert give.warnings == ("ASG web: MaxSize is 5, we set 3; someone else changed it, so it stays "
                             "(our 1 slot(s) not taken back)",)


def test_give_back_never_lowers_max_size_below_desired() -> None:
    record = GroupRecord("web", holds={"ex1": Hold(max_slots=1, planned_max=3)}, max_set_to=3, exists=True)
    give = plan_give_back(zoned(3, 2, 1, max_size=3), record, ["ex1"])  # a scale-out used our slot
    assert give.max_size is None and give.warnings == ("ASG web: MaxSize back to 3, not 2: desired is 3",)


def test_only_the_last_hold_resumes_and_only_what_we_suspended() -> None:
    record = GroupRecord("web", holds={"ex1": Hold(), "ex2": Hold()}, suspended=frozenset({"AZRebalance"}),
                         exists=True)
    g = zoned(2, 1, 1, suspended=frozenset({"AZRebalance", "Launch"}))
    first = plan_give_back(g, record, ["ex1"])
    assert first.resume == () and set(first.record.holds) == {"ex2"}
    assert plan_give_back(g, first.record, ["ex2"]).resume == ("AZRebalance",)  # never Launch: not ours
    resumed_by_someone = zoned(2, 1, 1)
    assert plan_give_back(resumed_by_someone, first.record, ["ex2"]).resume == ()


def test_the_record_round_trips_through_its_item() -> None:
    record = GroupRecord("web", holds={"ex1": Hold(1, 1, 3, 3)}, max_set_to=3, suspended=frozenset({"AZRebalance"}),
                         left_desired=3, left_max=3, exists=True)
    item = {**item_fields(record), **{f"hold#{k}": vars(v) for k, v in record.holds.items()}}
    assert record_from_item("web", item) == record


@given(st.integers(0, 20), st.integers(0, 5), st.integers(1, 8), st.booleans())
def test_n_concurrent_raises_then_n_releases_leave_the_group_exact(desired: int, spare: int, n: int,
                                                                   user_suspended: bool) -> None:
    """Sections run one at a time (the lease), each on a fresh read: desired rises by exactly n, MaxSize only as
    far as needed, and n releases (terminate with decrement, then give back) restore both."""
    suspended = frozenset({"AZRebalance"} if user_suspended else ())
    g, record = Group("web", desired, 0, desired + spare, suspended=suspended), GroupRecord("web")
    for k in range(n):
        take = plan_take(g, raise_desired=True)
        record = after_take(record, f"ex{k}", take, g, desired_after=take.desired or g.desired)
        g = Group("web", take.desired or g.desired, 0, take.max_size or g.max_size,
                  suspended=g.suspended | set(take.suspend))
    assert g.desired == desired + n and g.max_size == max(desired + spare, desired + n)
    for k in range(n):
        give = plan_give_back(g, record, [f"ex{k}"], desired_after=g.desired - 1)
        record = give.record
        g = Group("web", g.desired - 1, 0, g.max_size if give.max_size is None else give.max_size,
                  suspended=g.suspended - set(give.resume))
    assert (g.desired, g.max_size, g.suspended) == (desired, desired + spare, suspended)
    assert record.holds == {} and record.suspended == frozenset()


def test_a_give_back_retried_after_a_crash_resumes_what_the_crashed_section_suspended_writing_nothing_twice() -> None:
    # AttachSpot took (MaxSize 3 -> 4, AZRebalance suspended), attached, retired, gave MaxSize back to 3, and died
    # before ResumeProcesses and before releasing the lease: the record holds only its plan.
    hold = Hold(max_slots=1, planned_max=4, planned_suspend=("AZRebalance",))
    record = GroupRecord("web", lease_owner="x", lease_until=1.0, holds={"x": hold}, exists=True)
    now = zoned(3, 2, 1, max_size=3, suspended=frozenset({"AZRebalance"}))
    give = plan_give_back(now, record, ["x"])
    assert (give.max_size, give.resume, give.warnings) == (None, ("AZRebalance",), ())
    before_max_back = zoned(3, 2, 1, max_size=4, suspended=frozenset({"AZRebalance"}))
    assert plan_give_back(before_max_back, record, ["x"]).max_size == 3  # died before the MaxSize write
    someone = plan_give_back(zoned(3, 2, 1, max_size=6), record, ["x"])
    assert someone.max_size is None and "someone else changed it" in someone.warnings[0]


def test_an_attach_that_may_retire_at_once_defers_its_suspension_until_the_on_demand_stays() -> None:
    before = zoned(2, 2, 0)
    take = plan_take(before, raise_desired=False, zone="us-east-1a", defer_suspend=True)
    assert (take.suspend, take.hold.planned_suspend) == ((), ())
    attached = zoned(3, 3, 0)
    late = late_suspension(before, attached, "us-east-1a", take)
    assert late is not None and (late.suspend, late.hold.planned_suspend, late.max_size) == (
        ("AZRebalance",), ("AZRebalance",), None)
    assert after_take(GroupRecord("web"), "x", late, attached, desired_after=3).suspended == {"AZRebalance"}
    theirs = zoned(3, 3, 0, suspended=frozenset({"AZRebalance"}))  # someone suspended it meanwhile: theirs
    assert late_suspension(before, theirs, "us-east-1a", take) is None
    assert late_suspension(zoned(3, 1, 2), zoned(4, 2, 2), "us-east-1a", take) is None  # 2/2: balanced


def test_a_retry_plans_again_when_its_recorded_plan_came_from_a_read_its_lease_found_stale() -> None:
    full = zoned(4, 2, 2, max_size=4)  # read in the middle of another section: its spot attached, MaxSize 4
    hold = planned_from(plan_take(full, raise_desired=False, zone="us-east-1a", defer_suspend=True), full).hold
    assert (hold.max_slots, hold.planned_max, hold.read_desired, hold.read_max) == (1, 5, 4, 4)
    # The other section left the group at 3/3; our attempt took the lease, then died re-reading: nothing written.
    crashed = GroupRecord("web", lease_owner="ex1", holds={"ex1": hold}, left_desired=3, left_max=3, exists=True)
    assert unconfirmed(hold, crashed, "ex1")
    assert plan_give_back(zoned(3, 2, 1, max_size=3), crashed, ["ex1"]).max_size is None  # it gave nothing
    # Found current by its lease (or planned again under it), the plan is finished as recorded.
    assert not unconfirmed(hold, replace(crashed, left_desired=4, left_max=4), "ex1")
    assert not unconfirmed(confirmed(Take(hold, 5, None, ())).hold, crashed, "ex1")
    assert not unconfirmed(hold, replace(crashed, lease_owner=None), "ex1")  # released: it was confirmed
    item = {"cooldown_key": "group#web", "hold#ex1": {k: v for k, v in vars(hold).items() if v is not None}}
    assert record_from_item("web", item).holds["ex1"] == hold


def test_a_retry_of_an_attach_that_already_released_keeps_a_max_size_raised_since_by_another_swap() -> None:
    ours = Hold(max_slots=1, planned_max=4)
    # We took MaxSize 3 -> 4 and released; another swap then took 4 -> 5; our AttachSpot is retried.
    released = GroupRecord("web", holds={"ex1": ours, "ex2": Hold(max_slots=1, planned_max=5)}, max_set_to=5,
                           left_desired=5, left_max=5, exists=True)
    group = zoned(5, 3, 2, max_size=5)
    after = after_take(released, "ex1", retry_take(group, ours), group, desired_after=5)
    assert (after.max_set_to, after.left_max) == (5, 5)
    first = plan_give_back(zoned(4, 2, 2, max_size=5), after, ["ex1"], desired_after=4)
    second = plan_give_back(zoned(3, 2, 1, max_size=4), first.record, ["ex2"], desired_after=3)
    assert (first.max_size, second.max_size, first.warnings, second.warnings) == (4, 3, (), ())


def test_a_read_whose_sizes_came_back_but_whose_suspension_did_not_is_stale() -> None:
    """ABA: B reads the group (AZRebalance running), A raises desired and suspends AZRebalance, C releases (desired
    back): desired and MaxSize are as B read them, the suspension is not. Trusting B's read, the last give-back
    resumed nothing (the read showed nothing suspended) and AZRebalance stayed suspended for good (the 48-tag
    storm test, 1 run in 6 under load)."""
    stale_read = zoned(4, 2, 2)
    raise_take = plan_take(stale_read, raise_desired=True)
    assert raise_take.suspend == ("AZRebalance",)
    raised = after_take(GroupRecord("web", exists=True), "storm-1", raise_take,
                        zoned(5, 2, 2, suspended=frozenset({"AZRebalance"})), desired_after=5)
    # another execution's release brought desired back to 4 and gave back nothing of storm-1's
    released = replace(raised, left_desired=4, left_max=10)
    assert read_is_current(stale_read, released) is False
    current = zoned(4, 2, 2, suspended=frozenset({"AZRebalance"}))
    assert read_is_current(current, released) is True
    assert plan_give_back(current, released, ["storm-1"]).resume == ("AZRebalance",)
    assert plan_give_back(current, released, ["storm-1"]).record.left_suspended == frozenset()


def test_the_suspensions_a_section_left_round_trip_through_the_item() -> None:
    record = GroupRecord("web", exists=True, left_desired=4, left_max=10, left_suspended=frozenset({"AZRebalance"}))
    assert record_from_item("web", {"key": "group#web", **item_fields(record)}).left_suspended == {"AZRebalance"}
    old = record_from_item("web", {"key": "group#web", "left_desired": 4, "left_max": 10})
    assert old.left_suspended is None and read_is_current(zoned(4, 2, 2, suspended=frozenset({"X"})), old)
