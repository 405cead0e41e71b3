"""The fleet-wide pause: the pure decision, its settings and tag, CloudWatch's DescribeAlarms as AWS answers it, and
the pause on the embedded AWS — by alarm, by failure budget and by hand — with the interruption fallback running
while everything else is paused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st
from moto.cloudwatch.models import cloudwatch_backends

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.events import ACCOUNT, interrupt
from asg_optimizer.local.faults import FaultInjector
from asg_optimizer.local.group_builder import GroupSpec, attach_spot, create_group, create_network
from infra.config import ConfigError, parse_settings
from stack.description import INTERRUPTION, PAUSE_ALARMS, PAUSE_FAILURE_BUDGET
from tasks.core.errors import InvalidInput
from tasks.core.pause import (
    ALARM,
    FAILURE_WINDOW,
    AlarmState,
    ManualPause,
    PauseSettings,
    alarm_names,
    failure_window,
    fleet_pause,
    group_pause,
    pause_settings,
    tagged_alarms,
)
from tasks.core.policy import PolicyError, parse_policy
from tests.cli_helpers import cli, cli_json
from tests.conftest import FAST
from tests.test_launch_event import event_for, handle
from tests.test_scan import NO_GRACE, counted_calls, executions, run_scan

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
STATES = st.sampled_from([ALARM, "OK", "INSUFFICIENT_DATA", None])


# --- the pure decision ----------------------------------------------------------------------------------------


@given(alarms=st.dictionaries(st.sampled_from("abcd"), STATES, max_size=4), manual=st.booleans(),
       failures=st.integers(0, 6), budget=st.integers(0, 5))
def test_paused_exactly_when_by_hand_an_alarm_fires_or_is_missing_or_failures_exceed_the_budget(
        alarms: dict[str, str | None], manual: bool, failures: int, budget: int) -> None:
    named = tuple(sorted(alarms))
    states = {n: AlarmState(n, s, NOW) for n, s in alarms.items() if s is not None}
    by_hand = ManualPause("db migration", "arn:aws:iam::1:user/ana", NOW) if manual else None
    pause = fleet_pause(PauseSettings(named, budget), states, by_hand, failures)
    expected = manual or failures > budget or any(s in (ALARM, None) for s in alarms.values())
    assert (pause is not None) == expected
    if pause:
        assert pause.why.startswith("paused: ")
        assert (pause.reasons[0].startswith("by hand since 2026-12-02T06:00:00+00:00 by arn:aws:iam::1:user/ana: "
                                            "db migration")) == manual


def test_reasons_name_the_alarm_its_state_since_and_the_budget() -> None:
    alarms = {"api-5xx": AlarmState("api-5xx", ALARM, NOW), "ok": AlarmState("ok", "OK", NOW)}
    pause = fleet_pause(PauseSettings(("api-5xx", "ok", "gone"), 2), alarms, None, 3)
    assert pause is not None and pause.why == (
        "paused: alarm api-5xx in ALARM since 2026-12-02T06:00:00+00:00; alarm gone not found (a metric alarm of "
        "that name in this region); 3 swaps failed in the last hour, more than the budget of 2")
    assert fleet_pause(PauseSettings(("ok",), 2), alarms, None, 2) is None  # at the budget: not more than it


def test_a_group_alarm_pauses_its_group_only_on_top_of_the_fleet() -> None:
    alarms = {"web-p99": AlarmState("web-p99", ALARM, None), "fleet": AlarmState("fleet", "OK", None)}
    assert group_pause(None, ("web-p99",), alarms).why == "paused: alarm web-p99 in ALARM"  # type: ignore[union-attr]
    assert group_pause(None, ("fleet",), alarms) is None
    fleet = fleet_pause(PauseSettings((), 0), {}, None, 1)
    assert group_pause(fleet, ("web-p99",), alarms).reasons == (  # type: ignore[union-attr]
        "1 swap failed in the last hour, more than the budget of 0", "alarm web-p99 in ALARM")


@given(seconds=st.integers(0, 86399), micro=st.integers(0, 999999))
def test_the_failure_window_is_whole_minutes_from_at_or_before_an_hour_ago_to_after_now(seconds: int,
                                                                                        micro: int) -> None:
    """CloudWatch rounds a start down to the minute and excludes the end: the window covers the whole last hour."""
    now = NOW + timedelta(seconds=seconds, microseconds=micro)
    start, end = failure_window(now)
    assert start <= now - FAILURE_WINDOW < start + timedelta(minutes=1)
    assert now < end <= now + timedelta(minutes=1)
    assert start.second == start.microsecond == end.second == end.microsecond == 0


@pytest.mark.parametrize(("raw", "message"), [
    ("", "PAUSE_ALARMS: expected comma-separated CloudWatch alarm names, got ''"),
    ("a,,b", "PAUSE_ALARMS: expected comma-separated CloudWatch alarm names, got 'a,,b'"),
    ("a\tb", "PAUSE_ALARMS: 'a\\tb' is not a CloudWatch alarm name (1-255 characters, no control characters)"),
    ("x" * 256, f"PAUSE_ALARMS: {'x' * 40!r} is not a CloudWatch alarm name (1-255 characters, no control "
                "characters)"),
])
def test_bad_alarm_names_are_refused_naming_the_value(raw: str, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        alarm_names(raw, PAUSE_ALARMS)
    assert str(refused.value) == message


def test_settings_from_the_environment() -> None:
    assert pause_settings({}) == PauseSettings((), 3)
    assert pause_settings({PAUSE_ALARMS: " a , b,a", PAUSE_FAILURE_BUDGET: "0"}) == PauseSettings(("a", "b"), 0)
    with pytest.raises(InvalidInput, match=r"^PAUSE_FAILURE_BUDGET: expected a whole number .*, got '-1'$"):
        pause_settings({PAUSE_FAILURE_BUDGET: "-1"})


def test_stack_settings_pause_alarms_and_budget() -> None:
    assert parse_settings({}).pause_alarms == () and parse_settings({}).pause_failure_budget == 3
    assert parse_settings({"pauseAlarms": '["api-5xx", "db-lag"]'}).pause_alarms == ("api-5xx", "db-lag")
    assert parse_settings({"pauseAlarms": "api-5xx, db-lag"}).pause_alarms == ("api-5xx", "db-lag")
    assert parse_settings({"pauseAlarms": "[]", "pauseFailureBudget": "0"}).pause_failure_budget == 0
    with pytest.raises(ConfigError, match=r"^asg-optimizer:pauseAlarms: expected comma-separated CloudWatch alarm "
                                          r"names, got 'a,'$"):
        parse_settings({"pauseAlarms": "a,"})
    with pytest.raises(ConfigError, match=r"^asg-optimizer:pauseFailureBudget: must be a whole number, got 'x'$"):
        parse_settings({"pauseFailureBudget": "x"})


def test_the_pause_tag_is_a_policy_tag() -> None:
    tags = {"AsgOptimiser:PauseOnAlarms": "web-5xx,web-p99"}
    assert parse_policy("web", tags, default_grace_period=0).pause_alarms == ("web-5xx", "web-p99")
    assert tagged_alarms(tags) == ("web-5xx", "web-p99")
    bad = {"AsgOptimiser:PauseOnAlarms": " , "}
    with pytest.raises(PolicyError, match=r"^ASG web: tag AsgOptimiser:PauseOnAlarms=' , ' is malformed: expected "
                                          r"comma-separated CloudWatch alarm names"):
        parse_policy("web", bad, default_grace_period=0)
    assert tagged_alarms(bad) == ()  # the policy check skips the group on its own


# --- CloudWatch's DescribeAlarms as AWS answers it (moto gaps, asg_optimizer/local/cloudwatch_model.py) -------


def test_describe_alarms_applies_alarm_names_and_state_value_together(aws: EmbeddedAws) -> None:
    aws.put_alarm("a", ALARM)
    aws.put_alarm("b", "OK")
    aws.put_alarm("c", ALARM)
    found = aws.client("cloudwatch").describe_alarms(AlarmNames=["a", "b"], StateValue=ALARM)["MetricAlarms"]
    assert [a["AlarmName"] for a in found] == ["a"]


def test_describe_alarms_refuses_more_than_100_names_and_names_with_a_prefix(aws: EmbeddedAws) -> None:
    cloudwatch = aws.client("cloudwatch")
    with pytest.raises(ClientError) as refused:
        cloudwatch.describe_alarms(AlarmNames=[f"a{n}" for n in range(101)])
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError) as refused:
        cloudwatch.describe_alarms(AlarmNames=["a"], AlarmNamePrefix="a")
    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"


# --- the pause on the embedded AWS ----------------------------------------------------------------------------


@pytest.fixture
def guarded() -> Iterator[EmbeddedAws]:
    """A stack whose pauseAlarms name `api-5xx` and whose budget tolerates no failed swap."""
    env = {PAUSE_ALARMS: "api-5xx", PAUSE_FAILURE_BUDGET: "0", "SWAP_TIMING": json.dumps(FAST)}
    with EmbeddedAws(boot_delay_seconds=0.5, environment=env) as embedded:
        embedded.put_alarm("api-5xx", "OK")
        yield embedded


def _stop_all(aws: EmbeddedAws) -> None:
    for execution in executions(aws):
        if execution["status"] == "RUNNING":
            aws.client("stepfunctions").stop_execution(executionArn=execution["executionArn"])


def test_an_alarm_in_alarm_pauses_the_scanner_and_its_end_resumes_it(guarded: EmbeddedAws) -> None:
    aws = guarded
    network = create_network()
    create_group(network, GroupSpec("web", desired=2, max_size=3, extra_tags=NO_GRACE))
    aws.set_alarm("api-5xx", ALARM)
    paused = run_scan(aws)
    since = aws.client("cloudwatch").describe_alarms(AlarmNames=["api-5xx"])["MetricAlarms"][0][
        "StateUpdatedTimestamp"]
    why = f"paused: alarm api-5xx in ALARM since {since.isoformat(timespec='seconds')}"
    assert paused["paused"] == why
    assert paused["started"] == [] and paused["skipped_groups"] == [{"asg_name": "web", "why": why}]
    assert executions(aws) == []
    shown = cli_json("status")
    assert shown["paused"] == why and shown["groups"][0]["paused"] == why
    assert cli("status").stdout.startswith(why)
    aws.set_alarm("api-5xx", "OK")
    resumed = run_scan(aws)
    assert resumed["paused"] is None and len(resumed["started"]) == 1
    _stop_all(aws)


def test_a_group_tag_alarm_pauses_that_group_only(guarded: EmbeddedAws) -> None:
    aws = guarded
    aws.put_alarm("web-p99", ALARM)
    network = create_network()
    create_group(network, GroupSpec("web", desired=1, max_size=2,
                                    extra_tags={**NO_GRACE, "AsgOptimiser:PauseOnAlarms": "web-p99"}))
    create_group(network, GroupSpec("api", desired=1, max_size=2, extra_tags=NO_GRACE))
    result = run_scan(aws)
    assert result["paused"] is None
    assert [s["asg_name"] for s in result["skipped_groups"]] == ["web"]
    assert result["skipped_groups"][0]["why"].startswith("paused: alarm web-p99 in ALARM since ")
    assert [n.split("-i-")[0] for n in result["started"]] == ["api"]
    _stop_all(aws)


def test_a_named_alarm_that_does_not_exist_pauses_rather_than_guess(guarded: EmbeddedAws) -> None:
    aws = guarded
    aws.client("cloudwatch").delete_alarms(AlarmNames=["api-5xx"])
    create_group(create_network(), GroupSpec("web", desired=1, max_size=2, extra_tags=NO_GRACE))
    result = run_scan(aws)
    assert result["paused"] == "paused: alarm api-5xx not found (a metric alarm of that name in this region)"
    assert result["started"] == []


def test_failed_swaps_beyond_the_budget_pause_the_scanner(guarded: EmbeddedAws) -> None:
    aws = guarded
    raw = create_group(create_network(), GroupSpec("web", desired=2, max_size=3, extra_tags=NO_GRACE))
    with FaultInjector() as faults:
        faults.fail("ec2", "CreateFleet", "InsufficientInstanceCapacity")
        described = aws.wait(aws.start_swap("web", raw["Instances"][0]["InstanceId"], timing=FAST))
    assert described["status"] == "FAILED"
    result = run_scan(aws)
    assert result["paused"] == "paused: 1 swap failed in the last hour, more than the budget of 0"
    assert result["started"] == []
    assert [e["status"] for e in executions(aws)] == ["FAILED"]


def _ended(aws: EmbeddedAws, metric: str, at: datetime, machine: str) -> None:
    """A datapoint as Step Functions publishes it when an execution of `machine` ends (asg_optimizer.local.
    stepfunctions_model), at `at`: a timed-out swap, or one that ended long ago, without waiting for either."""
    cloudwatch_backends[ACCOUNT][aws.region].put_metric_data("AWS/States", [{
        "MetricName": metric, "Value": 1.0, "Unit": "Count", "Timestamp": at.astimezone(UTC).replace(tzinfo=None),
        "Dimensions": [{"Name": "StateMachineArn", "Value": machine}]}])


def test_timed_out_swaps_count_against_the_budget_within_the_last_hour_aborted_ones_never(
        guarded: EmbeddedAws) -> None:
    """The budget is Step Functions' own count (ExecutionsFailed + ExecutionsTimedOut of the replacement state
    machine, one GetMetricData): a swap that timed out (no Fail state reached) counts, for an hour."""
    aws = guarded
    create_group(create_network(), GroupSpec("web", desired=1, max_size=2, extra_tags=NO_GRACE))
    now = datetime.now(UTC).replace(microsecond=0)
    at = {"now": now.isoformat().replace("+00:00", "Z")}
    _ended(aws, "ExecutionsTimedOut", now - timedelta(minutes=61), aws.deployment.replace_arn)  # before the window
    _ended(aws, "ExecutionsAborted", now - timedelta(minutes=1), aws.deployment.replace_arn)  # a person's stop
    _ended(aws, "ExecutionsTimedOut", now - timedelta(minutes=1), aws.deployment.state_machine_arns[INTERRUPTION])
    with counted_calls() as calls:
        assert run_scan(aws, dry_run=True, **at)["paused"] is None
    assert calls["cloudwatch.GetMetricData"] == 1 and calls["sfn.ListExecutions"] == 1  # the running swaps only
    _ended(aws, "ExecutionsTimedOut", now - timedelta(minutes=59), aws.deployment.replace_arn)
    assert run_scan(aws, dry_run=True, **at)["paused"] == (
        "paused: 1 swap failed in the last hour, more than the budget of 0")


def test_pause_and_resume_by_hand(guarded: EmbeddedAws) -> None:
    aws = guarded
    create_group(create_network(), GroupSpec("web", desired=1, max_size=2, extra_tags=NO_GRACE))
    assert cli("pause", "--why", "  ").exit_code == 2
    done = cli("pause", "--why", "db migration until 07:00")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("Paused by hand: db migration until 07:00 (by arn:aws:")
    result = run_scan(aws)
    assert result["paused"].startswith("paused: by hand since ") and result["paused"].endswith(
        ": db migration until 07:00")
    assert result["started"] == []
    assert cli_json("status")["paused"] == result["paused"]
    resumed = cli("resume")
    assert resumed.exit_code == 0 and resumed.stdout.startswith(
        "Resumed: the pause by hand (db migration until 07:00) is lifted."), resumed.output
    assert cli("resume").stdout.startswith("Not paused by hand: nothing to resume.")
    assert len(run_scan(aws)["started"]) == 1
    _stop_all(aws)


def test_while_paused_launch_events_and_rebalances_start_nothing_but_the_interruption_fallback_runs(
        guarded: EmbeddedAws) -> None:
    aws = guarded
    network = create_network()
    raw = create_group(network, GroupSpec("web", desired=1, max_size=2, extra_tags=NO_GRACE, zones=("a",)))
    spot = attach_spot(network, raw)
    aws.set_alarm("api-5xx", ALARM)
    launched = handle(aws, event_for("web", raw["Instances"][0]["InstanceId"]))
    assert launched["action"] == "skip" and launched["why"].startswith("paused: alarm api-5xx in ALARM since ")
    rebalanced = interrupt(aws, spot, rebalance=True, reclaim=False).results["spot-rebalance"]
    assert rebalanced["ignored"].startswith("paused: alarm api-5xx in ALARM since ")
    assert executions(aws) == []
    delivery = interrupt(aws, spot)
    name = delivery.results["spot-interruption"]["execution_name"]
    arn = aws.deployment.state_machine_arns[INTERRUPTION].replace(":stateMachine:", ":execution:") + f":{name}"
    assert aws.wait(arn, timeout=30)["status"] == "SUCCEEDED"


def test_status_judges_the_failure_budget_as_the_scanner_does_a_failed_fallback_does_not_count(
        guarded: EmbeddedAws) -> None:
    """The CLI reads the pause with the functions' own reader (tasks/aws/pause_state.py): only failed swaps count
    against the budget, not a failed interruption fallback (the CLI's own copy counted both)."""
    aws = guarded
    create_group(create_network(), GroupSpec("web", desired=1, max_size=2, extra_tags=NO_GRACE))
    fallback = aws.client("stepfunctions").start_execution(
        stateMachineArn=aws.deployment.state_machine_arns[INTERRUPTION], name="web-fallback-failed",
        input=json.dumps({"asg_name": "ghost", "spot_instance_id": "i-0123456789abcdef0"}))["executionArn"]
    assert aws.wait(fallback, timeout=60)["status"] == "FAILED"
    assert cli_json("status")["paused"] is None
    result = run_scan(aws)
    assert result["paused"] is None and len(result["started"]) == 1
    _stop_all(aws)
