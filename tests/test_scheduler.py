"""The local schedules: scanner and sweep run through their deployed functions on a (sped-up) timer."""

from __future__ import annotations

import time

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.scheduler import Scheduler, matches, rate_seconds
from stack.description import STACK
from tests.conftest import FAST


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(5 minutes)", 300), ("rate(1 minute)", 60), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_expressions(expression: str, seconds: int) -> None:
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize("expression", ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "cron(0 * * * ? *)"])
def test_other_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError, match=r"only 'rate\(N unit\)' runs locally"):
        rate_seconds(expression)


def test_stack_schedules() -> None:
    assert {(s.function, rate_seconds(s.expression)) for s in STACK.schedules} == {("scanner", 300), ("sweep", 600)}


def test_patterns_match_like_eventbridge() -> None:
    pattern = {"source": ["aws.autoscaling"], "detail": {"AutoScalingGroupName": ["web", "api"]}}
    assert matches(pattern, {"source": "aws.autoscaling", "detail": {"AutoScalingGroupName": "api", "x": 1}})
    assert not matches(pattern, {"source": "aws.autoscaling", "detail": {"AutoScalingGroupName": "db"}})
    assert not matches(pattern, {"source": "aws.autoscaling"})
    assert not matches(pattern, {"source": "aws.ec2", "detail": {"AutoScalingGroupName": "web"}})


def test_schedules_run_the_scanner_and_sweep_on_a_timer(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=2, max_size=3, extra_tags={"AsgOptimiser:MaxParallel": "2"})
    # 5 minutes -> 0.5 s for the scanner, 1 s for the sweep; the swaps park in their start delay, so later scans
    # must find them in flight
    parked = {**FAST, "start_delay_seconds": 3600}
    with Scheduler(aws, speedup=600, inputs={"scan": {"timing": parked}}) as scheduler:
        deadline = time.monotonic() + 30

        def enough() -> bool:
            return len(scheduler.runs_of("sweep")) >= 2 and len(scheduler.runs_of("scan")) >= 3

        while not enough() and time.monotonic() < deadline:
            time.sleep(0.1)
    scans, sweeps = scheduler.runs_of("scan"), scheduler.runs_of("sweep")
    assert len(sweeps) >= 2 and len(scans) >= 3
    assert not any(r.errored for r in scans + sweeps), [r.result for r in scans + sweeps if r.errored]
    started = [name for r in scans for name in r.result["started"]]
    assert len(started) == 2 == len(set(started))  # later scans found them in flight
    assert {r.result["terminated"] == [] for r in sweeps} == {True}
    assert all(p["why"].startswith("already being replaced") for p in scans[-1].result["plan"])
    sfn = aws.client("stepfunctions")
    for execution in sfn.list_executions(stateMachineArn=aws.deployment.replace_arn)["executions"]:
        assert execution["status"] == "RUNNING"
        sfn.stop_execution(executionArn=execution["executionArn"])


def test_scan_once_returns_the_started_executions(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=2, max_size=4, extra_tags={"AsgOptimiser:MaxParallel": "2"})
    arns = Scheduler(aws, inputs={"scan": {"timing": FAST}}).scan()
    assert len(arns) == 2
    assert [aws.wait(arn)["status"] for arn in arns] == ["SUCCEEDED", "SUCCEEDED"]
