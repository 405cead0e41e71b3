"""The pure parts of the CLI: the execution timeline built from history events, loop counting, outcomes, cause
parsing, execution-name matching, option parsing and the policy line, with plain values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asg_optimizer.aws_session import CliError
from asg_optimizer.commands.executions import parse_since, parse_status
from asg_optimizer.commands.status import describe_policy
from asg_optimizer.timeline import build_timeline, compress, console_url, outcome_of, readable_cause, render_path
from tasks.core.naming import belongs_to, execution_name
from tasks.core.policy import Policy, Window

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ARN = ("arn:aws:states:eu-west-1:111122223333:execution:asg-optimizer-replace-instance:"
       "web-i-0abc12345678-20260301T120000")
LAMBDA_CAUSE = json.dumps({"errorMessage": "no spot capacity for m5.large in eu-west-1a",
                           "errorType": "NoSpotCapacity", "stackTrace": ["  File x"]})


class History:
    """Builds GetExecutionHistory events one second apart."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def _add(self, kind: str, **details: Any) -> History:
        self.events.append({"type": kind, "timestamp": T0 + timedelta(seconds=len(self.events)), **details})
        return self

    def state(self, name: str, kind: str = "Task", exit_: bool = True) -> History:
        self._add(f"{kind}StateEntered", stateEnteredEventDetails={"name": name})
        return self._add(f"{kind}StateExited", stateExitedEventDetails={"name": name}) if exit_ else self

    def lambda_failed(self, error: str, cause: str = "") -> History:
        return self._add("LambdaFunctionFailed", lambdaFunctionFailedEventDetails={"error": error, "cause": cause})

    def failed(self, error: str, cause: str) -> History:
        return self._add("ExecutionFailed", executionFailedEventDetails={"error": error, "cause": cause})

    def succeeded(self) -> History:
        return self._add("ExecutionSucceeded")


def described(status: str, output: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"executionArn": ARN, "name": ARN.rsplit(":", 1)[-1], "status": status, "startDate": T0,
            "stopDate": None if status == "RUNNING" else T0 + timedelta(seconds=30),
            "input": json.dumps({"asg_name": "web", "instance_id": "i-0abc12345678"}),
            "output": json.dumps(output) if output is not None else None, **extra}


def test_compress_counts_consecutive_repeats_of_the_shortest_block() -> None:
    path = ["Validate", "LaunchSpot", "WaitForBoot", "CheckSpot", "SpotReady", "WaitForBoot", "CheckSpot", "SpotReady",
            "WaitForBoot", "CheckSpot", "SpotReady", "AttachSpot"]
    assert compress(path) == [(("Validate",), 1), (("LaunchSpot",), 1),
                              (("WaitForBoot", "CheckSpot", "SpotReady"), 3), (("AttachSpot",), 1)]
    assert render_path(compress(path)) == \
        "Validate → LaunchSpot → (WaitForBoot → CheckSpot → SpotReady) x3 → AttachSpot"
    assert render_path(compress(["A", "A", "B"])) == "A x2 → B"
    assert compress([]) == []


@given(st.lists(st.sampled_from("ABC"), max_size=30))
def test_compress_loses_nothing(names: list[str]) -> None:
    expanded = [name for block, repeats in compress(names) for _ in range(repeats) for name in block]
    assert expanded == names
    assert all(repeats >= 1 for _, repeats in compress(names))


def test_a_failed_execution_names_the_step_and_its_own_message() -> None:
    events = (History().state("HasStartDelay", "Choice").state("Validate")
              .state("LaunchSpot", exit_=False).lambda_failed("AwsThrottled")  # retried, then:
              .lambda_failed("NoSpotCapacity", LAMBDA_CAUSE)._add("TaskStateExited",
                                                                 stateExitedEventDetails={"name": "LaunchSpot"})
              .state("Cleanup").state("RestoreAfterFailure").state("SwapFailed", "Fail", exit_=False)
              .failed("NoSpotCapacity", LAMBDA_CAUSE).events)
    timeline = build_timeline(described("FAILED", error="NoSpotCapacity", cause=LAMBDA_CAUSE), events)

    assert timeline.failed_in == "LaunchSpot"
    assert (timeline.error, timeline.cause) == ("NoSpotCapacity", "no spot capacity for m5.large in eu-west-1a")
    assert [s.name for s in timeline.steps] == ["HasStartDelay", "Validate", "LaunchSpot", "Cleanup",
                                                "RestoreAfterFailure", "SwapFailed"]
    launch = timeline.steps[2]
    assert launch.error == "NoSpotCapacity" and launch.seconds(T0) == 3.0
    assert timeline.steps[-1].exited == events[-1]["timestamp"]  # a Fail state ends with the execution
    assert timeline.outcome == "FAILED" and timeline.ended and timeline.current is None
    data = timeline.as_dict(T0, "eu-west-1")
    assert data["steps"][2] == {"state": "LaunchSpot", "type": "Task", "visit": 1,
                                "entered": (T0 + timedelta(seconds=4)).isoformat(), "seconds": 3.0, "running": False,
                                "error": "NoSpotCapacity"}
    assert data["console_url"] == console_url("eu-west-1", ARN)


def test_a_running_execution_has_a_current_state_and_open_step() -> None:
    events = (History().state("HasStartDelay", "Choice").state("Validate").state("LaunchSpot")
              .state("WaitForBoot", "Wait").state("CheckSpot").state("SpotReady", "Choice")
              .state("WaitForBoot", "Wait", exit_=False).events)
    timeline = build_timeline(described("RUNNING"), events)
    assert timeline.current == "WaitForBoot" and not timeline.ended
    assert [s.visit for s in timeline.steps if s.name == "WaitForBoot"] == [1, 2]
    assert timeline.steps[-1].exited is None
    assert timeline.steps[-1].seconds(events[-1]["timestamp"] + timedelta(seconds=4)) == 4.0
    assert timeline.outcome == "RUNNING" and timeline.failed_in is None


def test_success_means_swapped_only_when_the_execution_ended_in_swapped() -> None:
    swapped = History().state("RestoreGroup").state("Swapped", "Succeed").succeeded().events
    assert build_timeline(described("SUCCEEDED", {"spot": {"outcome": "launched"}}), swapped).outcome == "swapped"
    no_capacity = History().state("LaunchSpot").state("NoCapacity", "Succeed").succeeded().events
    reported = {"outcome": "no-capacity", "why": "no spot capacity in 3 candidate pool(s)"}
    assert build_timeline(described("SUCCEEDED", reported), no_capacity).outcome == "no-capacity"
    assert build_timeline(described("SUCCEEDED", {}), no_capacity).outcome == "NoCapacity"
    assert outcome_of("SUCCEEDED", {"outcome": "no-capacity"}) == "no-capacity"
    assert outcome_of("SUCCEEDED", {"asg_name": "web"}) == "swapped"
    assert outcome_of("TIMED_OUT", {}) == "TIMED_OUT"


def test_readable_cause_keeps_the_lambda_error_message() -> None:
    assert readable_cause(LAMBDA_CAUSE) == "no spot capacity for m5.large in eu-west-1a"
    assert readable_cause("States.Timeout: the state timed out") == "States.Timeout: the state timed out"
    assert readable_cause('["not", "an object"]') == '["not", "an object"]'
    assert readable_cause(None) == ""


def test_console_url() -> None:
    assert console_url("eu-west-1", ARN) == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/" + ARN)


def test_belongs_to_matches_the_group_part_as_the_name_was_made() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    instance = "i-0123456789abcdef0"
    assert belongs_to(execution_name("web", instance, at), "web")
    assert not belongs_to(execution_name("web-2", instance, at), "web")
    assert not belongs_to(execution_name("web", instance, at), "web-2")
    long_name = "checkout-service-production-eu-west-1-blue-green-canary-fleet"  # cut in the name
    assert belongs_to(execution_name(long_name, instance, at), long_name)
    assert not belongs_to("a-name-someone-else-chose", "web")


def test_since_and_status_options() -> None:
    assert parse_since("90s") == timedelta(seconds=90)
    assert parse_since("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_since("2d") == timedelta(days=2)
    for bad in ("", "5", "5x", "m", "1h 30m"):
        with pytest.raises(CliError, match="is not a duration such as 30m, 2h, 1d or 1h30m"):
            parse_since(bad)
    assert parse_status("timed-out") == "TIMED_OUT" and parse_status(None) is None


def test_policy_line_spells_out_every_default() -> None:
    assert describe_policy(Policy(), desired=4) == "keep 0 on-demand, 1 at a time, grace 0s, types any, any hour"
    policy = Policy(min_on_demand=1, min_on_demand_percent=50, max_parallel=3, grace_period=300,
                    allowed_types=("m5.*", "c5.*"), denied_types=("m5.metal",), window=Window(22, 6))
    assert describe_policy(policy, desired=5) == (
        "keep 3 on-demand (min 1, 50%), 3 at a time, grace 300s, types m5.*,c5.* but m5.metal, hours 22-06 UTC")
