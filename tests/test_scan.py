"""The scanner on the embedded AWS: dry runs change nothing, dispatch is idempotent, API calls stay per page."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from stack.description import REPLACE_STATE_MACHINE_ARN, STACK
from tasks import scan
from tasks.aws.clients import reset_clients
from tasks.aws.pause_state import pause_item
from tasks.core.errors import InvalidInput
from tasks.core.pause import ManualPause
from tasks.core.settings import COOLDOWN_TABLE as TABLE_VARIABLE
from tasks.core.settings import REPLACE_STATE_MACHINE_ARN as REPLACE_ARN_VARIABLE
from tests.conftest import FAST
from tests.workflow_helpers import instances, validate_held

NO_GRACE = {"AsgOptimiser:GracePeriod": "0"}


def invoke(aws: EmbeddedAws, function_key: str, event: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    response = aws.client("lambda").invoke(FunctionName=STACK.function(function_key).name(),
                                           Payload=json.dumps(event))
    return json.loads(response["Payload"].read()), "FunctionError" in response


def run_scan(aws: EmbeddedAws, **event: Any) -> dict[str, Any]:
    """Direct call, as Lambda would make it, with the deployed function's environment."""
    env = aws.client("lambda").get_function_configuration(FunctionName=STACK.function("scanner").name())
    os.environ.update(env["Environment"]["Variables"])
    return scan.handler(event, None)


def snapshot(aws: EmbeddedAws) -> dict[str, Any]:
    """Everything a scan could change: groups (sizes, tags, processes, members), instances, executions."""
    groups = aws.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    reservations = aws.client("ec2").describe_instances()["Reservations"]
    executions = aws.client("stepfunctions").list_executions(stateMachineArn=aws.deployment.replace_arn)
    return {"groups": groups, "instances": [i for r in reservations for i in r["Instances"]],
            "executions": executions["executions"]}


def executions(aws: EmbeddedAws) -> list[dict[str, Any]]:
    return aws.client("stepfunctions").list_executions(stateMachineArn=aws.deployment.replace_arn)["executions"]


@contextmanager
def counted_calls() -> Iterator[Counter[str]]:
    """AWS API calls made by task code (clients on the default session), by service.operation."""
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        calls[f"{service}.{operation}"] += 1

    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call.*.*", count)  # type: ignore[union-attr]
    reset_clients()
    try:
        yield calls
    finally:
        boto3.DEFAULT_SESSION.events.unregister("before-call.*.*", count)  # type: ignore[union-attr]
        reset_clients()


def test_the_environment_variable_name_matches_the_stack() -> None:
    assert REPLACE_ARN_VARIABLE.name == REPLACE_STATE_MACHINE_ARN
    assert STACK.function("scanner").handler == "tasks.scan.handler"


def test_dry_run_through_the_deployed_function_changes_nothing(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=3, max_size=4, extra_tags={**NO_GRACE, "AsgOptimiser:MaxParallel": "2"})
    make_group("batch", desired=2, max_size=2, extra_tags={**NO_GRACE, "AsgOptimiser:MinOnDemand": "2"})
    make_group("legacy", desired=1, max_size=1, opted_in=False)
    before = snapshot(aws)
    result, errored = invoke(aws, "scanner", {"dry_run": True})
    assert not errored, result
    assert snapshot(aws) == before
    assert (result["dry_run"], result["groups_scanned"], result["started"], result["skipped_groups"]) == (
        True, 2, [], [])
    by_group = Counter((p["asg_name"], p["action"]) for p in result["plan"])
    assert by_group == {("web", "replace"): 2, ("web", "skip"): 1, ("batch", "skip"): 2}
    assert {p["why"] for p in result["plan"] if p["asg_name"] == "batch"} == {
        "on-demand floor 2 reached (MinOnDemand 2, MinOnDemandPercent 0% of desired 2): "
        "2 on-demand not being replaced, 0 picked now"}


def test_scan_starts_swaps_and_a_second_scan_starts_none(aws: EmbeddedAws, make_group) -> None:
    group = make_group("web", desired=3, max_size=4, extra_tags={**NO_GRACE, "AsgOptimiser:MaxParallel": "2"})
    with validate_held():  # the swaps stay RUNNING until the second scan is done, however fast the machine
        result, errored = invoke(aws, "scanner", {"timing": FAST})
        assert not errored, result
        assert len(result["started"]) == 2
        assert {e["name"] for e in executions(aws)} == set(result["started"])
        again, _ = invoke(aws, "scanner", {"timing": FAST})
    assert again["started"] == []
    assert sorted(p["why"].split(" by execution")[0] for p in again["plan"] if p["action"] == "skip") == [
        "MaxParallel 2 reached (2 in flight, 0 picked now)", "already being replaced", "already being replaced"]
    assert len(executions(aws)) == 2
    described = [aws.wait(e["executionArn"]) for e in executions(aws)]
    assert [d["status"] for d in described] == ["SUCCEEDED", "SUCCEEDED"]
    first_input = json.loads(described[0]["input"])
    assert first_input["reason"] == "scheduled" and first_input["timing"]["boot_poll_seconds"] == 2
    oldest = sorted(group["Instances"], key=lambda i: i["InstanceId"])
    assert {json.loads(d["input"])["instance_id"] for d in described} <= {i["InstanceId"] for i in oldest}
    members = [i["InstanceId"] for i in aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]["Instances"]]
    lifecycles = Counter(i.get("InstanceLifecycle", "on-demand") for i in instances(aws) if i["InstanceId"] in members)
    assert lifecycles == {"spot": 2, "on-demand": 1}


def test_the_same_scan_repeated_at_once_is_recognised_by_name(aws: EmbeddedAws, make_group) -> None:
    """A retried invocation within the same second names its executions the same, so nothing is started twice
    even before ListExecutions shows the first ones: each start's input carries its own start_id, so a repeat
    gets ExecutionAlreadyExists (already running, not an error) and is not reported as started."""
    make_group("web", desired=1, max_size=2, extra_tags=NO_GRACE)
    now = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    delayed = {**FAST, "start_delay_seconds": 60}
    first = run_scan(aws, now=now, timing=delayed)
    original = scan.running_swaps
    scan.running_swaps = lambda arn: {}  # type: ignore[assignment]  # as if ListExecutions lagged
    try:
        same_input = run_scan(aws, now=now, timing=delayed)
        other_input = run_scan(aws, now=now, timing={**delayed, "boot_max_polls": 11})
    finally:
        scan.running_swaps = original  # type: ignore[assignment]
    assert len(first["started"]) == 1
    assert same_input["started"] == []  # the first execution exists: not started by this scan
    assert other_input["started"] == []
    assert [e["name"] for e in executions(aws)] == first["started"]
    aws.client("stepfunctions").stop_execution(executionArn=executions(aws)[0]["executionArn"])


def test_a_malformed_group_is_skipped_with_one_log_line_and_others_proceed(aws: EmbeddedAws, make_group,
                                                                           caplog) -> None:
    make_group("bad", desired=1, max_size=2, extra_tags={**NO_GRACE, "AsgOptimiser:MinOnDemandPercent": "half"})
    make_group("good", desired=1, max_size=2, extra_tags=NO_GRACE)
    caplog.clear()
    result = run_scan(aws, dry_run=True)
    message = "ASG bad: tag AsgOptimiser:MinOnDemandPercent='half' is malformed: expected a whole number from 0 to 100"
    assert result["skipped_groups"] == [{"asg_name": "bad", "why": message}]
    assert [(p["asg_name"], p["action"]) for p in result["plan"]] == [("good", "replace")]
    lines = [(r.levelname, r.getMessage(), getattr(r, "asg", None)) for r in caplog.records if "bad" in r.getMessage()]
    assert lines == [("WARNING", message, "bad")]


def test_restricted_scan_says_why_it_skips_named_groups(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=1, max_size=2, extra_tags=NO_GRACE)
    make_group("other", desired=1, max_size=2, extra_tags=NO_GRACE)
    make_group("legacy", desired=1, max_size=2, opted_in=False)
    result = run_scan(aws, dry_run=True, asg_names=["web", "legacy", "nope"])
    assert result["groups_scanned"] == 2
    assert {p["asg_name"] for p in result["plan"]} == {"web"}
    assert result["skipped_groups"] == [
        {"asg_name": "legacy", "why": "not opted in: tag AsgOptimiser is missing, expected 'true'"},
        {"asg_name": "nope", "why": "ASG not found"},
    ]


def test_window_and_grace_are_taken_at_the_requested_time(aws: EmbeddedAws, make_group) -> None:
    make_group("night", desired=1, max_size=2, extra_tags={**NO_GRACE, "AsgOptimiser:Window": "22-06"})
    make_group("fresh", desired=1, max_size=2, extra_tags={"AsgOptimiser:GracePeriod": "3600"})
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=1)
    result = run_scan(aws, dry_run=True, now=noon.isoformat())
    assert result["skipped_groups"] == [{"asg_name": "night", "why": "outside window 22-06 UTC (now 12:00 UTC)"}]
    assert [p["action"] for p in result["plan"]] == ["replace"]  # a day later, the grace period has passed
    result = run_scan(aws, dry_run=True, now=(datetime.now(UTC) + timedelta(minutes=1)).isoformat())
    fresh = [p for p in result["plan"] if p["asg_name"] == "fresh"]
    assert fresh[0]["action"] == "skip" and fresh[0]["why"].startswith("in grace period: launched ")


def test_a_running_instance_refresh_stops_a_real_scan_but_a_dry_run_does_not_ask(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=2, max_size=3, extra_tags=NO_GRACE)
    make_group("api", desired=1, max_size=2, extra_tags=NO_GRACE)
    refresh = aws.client("autoscaling").start_instance_refresh(AutoScalingGroupName="web")["InstanceRefreshId"]
    with counted_calls() as calls:
        dry = run_scan(aws, dry_run=True)
    assert "auto-scaling.DescribeInstanceRefreshes" not in calls
    assert {p["asg_name"] for p in dry["plan"] if p["action"] == "replace"} == {"web", "api"}
    before = snapshot(aws)["groups"]
    with counted_calls() as calls:
        real = run_scan(aws, timing={**FAST, "start_delay_seconds": 60})
    assert calls["auto-scaling.DescribeInstanceRefreshes"] == 2  # only the groups it was about to start swaps in
    assert real["skipped_groups"] == [{"asg_name": "web", "why": f"instance refresh {refresh} is InProgress"}]
    assert [name.split("-i-")[0] for name in real["started"]] == ["api"]
    web_after = next(g for g in snapshot(aws)["groups"] if g["AutoScalingGroupName"] == "web")
    assert web_after == next(g for g in before if g["AutoScalingGroupName"] == "web")
    for execution in executions(aws):
        aws.client("stepfunctions").stop_execution(executionArn=execution["executionArn"])


def test_api_calls_are_per_page_not_per_group(aws: EmbeddedAws, make_group) -> None:
    make_group("g000", desired=3, max_size=3, extra_tags=NO_GRACE)
    make_group("g100", desired=3, max_size=3, extra_tags=NO_GRACE)
    autoscaling = aws.client("autoscaling")
    template = aws.client("ec2").describe_launch_templates()["LaunchTemplates"][0]["LaunchTemplateId"]
    for n in range(1, 100):  # empty groups in between: two pages of groups, quick to build
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=f"g{n:03d}", LaunchTemplate={"LaunchTemplateId": template}, MinSize=0, MaxSize=1,
            DesiredCapacity=0, AvailabilityZones=["us-east-1a"],
            Tags=[{"Key": "AsgOptimiser", "Value": "true", "PropagateAtLaunch": False}])
    with counted_calls() as calls:
        result = run_scan(aws, dry_run=True)
    assert result["groups_scanned"] == 101
    assert Counter(p["asg_name"] for p in result["plan"]) == {"g000": 3, "g100": 3}
    # no per-group call: lifecycle hooks are not read (a group Validate refused for its launch hook is in the one
    # Scan of the cooldown store, and so is the pause by hand); the running swaps; the pause: failed and timed-out
    # swaps from Step Functions' metrics (no alarm named: no DescribeAlarms); the account's commitments: one call
    # each for RIs and Savings Plans (none active)
    per_scan = {"auto-scaling.DescribeAutoScalingGroups": 2, "ec2.DescribeInstances": 1, "sfn.ListExecutions": 1,
                "cloudwatch.GetMetricData": 1, "dynamodb.Scan": 1}
    commitment_reads = {"ec2.DescribeReservedInstances": 1, "savingsplans.DescribeSavingsPlans": 1}
    assert dict(calls) == per_scan | commitment_reads
    with counted_calls() as calls:  # a warm container keeps the commitments it read for 5 minutes
        run_scan(aws, dry_run=True)
        run_scan(aws, dry_run=True)
    assert dict(calls) == {call: 2 * n for call, n in per_scan.items()} | commitment_reads


def test_the_scanner_reads_the_pause_by_hand_in_its_one_consistent_scan(aws: EmbeddedAws, make_group) -> None:
    """A `pause` a moment ago must count, as a consistent GetItem of the pause record would see it: the scanner
    reads the record in its Scan of the coordination table, read consistently, and makes no GetItem."""
    make_group("web", desired=1, max_size=2, extra_tags=NO_GRACE)
    deployed = aws.client("lambda").get_function_configuration(FunctionName=STACK.function("scanner").name())
    since = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    by = "arn:aws:iam::123456789012:user/ops"
    aws.client("dynamodb").put_item(TableName=deployed["Environment"]["Variables"][TABLE_VARIABLE.name],
                                    Item=pause_item(ManualPause("db migration", by, since)))
    scans: list[dict[str, Any]] = []
    with counted_calls() as calls:
        boto3.DEFAULT_SESSION.events.register(  # type: ignore[union-attr]
            "provide-client-params.dynamodb.Scan", lambda params, **_: scans.append(dict(params)))
        result = run_scan(aws, dry_run=True)
    why = f"paused: by hand since 2026-12-02T07:00:00+00:00 by {by}: db migration"
    assert result["paused"] == why and result["skipped_groups"] == [{"asg_name": "web", "why": why}]
    assert "dynamodb.GetItem" not in calls and calls["dynamodb.Scan"] == 1
    assert [s.get("ConsistentRead") for s in scans] == [True]


BAD_INPUT = [
    ({"dry_run": "yes"}, "dry_run must be true or false, got 'yes'"),
    ({"asg_names": "web"}, "asg_names must be a list of ASG names, got 'web'"),
    ({"now": "yesterday"}, "now must be an ISO 8601 timestamp such as '2026-01-31T22:30:00Z', got 'yesterday'"),
    ({"timing": {"boot_polls": 3}}, "unknown timing key 'boot_polls'; known keys: boot_max_polls, "
                                    "boot_poll_seconds, group_max_polls, group_poll_seconds, lb_max_polls, "
                                    "lb_poll_seconds, start_delay_seconds"),
    ({"timing": "fast"}, "timing must be an object of timing keys, got 'fast'"),
]


def test_bad_input_is_refused_with_one_line_and_nothing_changes(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=1, max_size=2, extra_tags=NO_GRACE)
    before = snapshot(aws)
    for event, message in BAD_INPUT:
        result, errored = invoke(aws, "scanner", event)
        assert errored and (result["errorType"], result["errorMessage"]) == ("InvalidInput", message)
        with pytest.raises(InvalidInput):
            run_scan(aws, **event)
    assert snapshot(aws) == before


def test_a_scheduled_event_body_is_accepted_as_a_real_scan(aws: EmbeddedAws, make_group) -> None:
    from asg_optimizer.local.scheduler import scheduled_event

    make_group("web", desired=1, max_size=2, extra_tags=NO_GRACE)
    result, errored = invoke(aws, "scanner", scheduled_event(STACK.schedules[0], aws.region))
    assert not errored, result
    assert result["dry_run"] is False and len(result["started"]) == 1
    aws.client("stepfunctions").stop_execution(executionArn=executions(aws)[0]["executionArn"])


def test_instances_are_read_1000_ids_a_call_and_a_vanished_id_is_dropped(aws: EmbeddedAws, make_group) -> None:
    from tasks.aws.instances import instances_by_id

    group = make_group("web", desired=3, max_size=3)
    ids = [i["InstanceId"] for i in group["Instances"]]
    with counted_calls() as calls:
        found = instances_by_id([*ids, "i-0123456789abcdef0"])
    assert sorted(found) == sorted(ids)
    assert dict(calls) == {"ec2.DescribeInstances": 2}  # the second without the id EC2 does not know


def test_the_cli_reads_instances_with_the_same_reader_on_its_own_session(aws: EmbeddedAws, make_group) -> None:
    """One reader per resource: the CLI's read drops a vanished id exactly as the functions' does, through the
    clients of its own session (none of the functions' clients is made)."""
    from asg_optimizer.aws_session import Target
    from asg_optimizer.inventory import instances

    group = make_group("web", desired=3, max_size=3)
    ids = [i["InstanceId"] for i in group["Instances"]]
    target = Target(region=aws.region)
    cli_calls: Counter[str] = Counter()
    target.client("ec2").meta.events.register(
        "before-call.*.*", lambda event_name, **_: cli_calls.update([event_name.split(".", 1)[1]]))
    with counted_calls() as own_calls:
        found = instances(target, [*ids, "i-0123456789abcdef0"])
    assert sorted(found) == sorted(ids) and all(found[i]["InstanceId"] == i for i in ids)
    assert dict(cli_calls) == {"ec2.DescribeInstances": 2} and not own_calls


def test_explicit_ids_come_back_in_one_response_as_in_aws(aws: EmbeddedAws, network) -> None:
    ec2 = aws.client("ec2")
    ids = [ec2.run_instances(ImageId="ami-0a1b2c3d4e5f60718", MinCount=1, MaxCount=1,
                             SubnetId=network.subnets["a"])["Instances"][0]["InstanceId"] for _ in range(120)]
    response = ec2.describe_instances(InstanceIds=ids)  # 120 reservations: moto alone would page at 100
    assert len(response["Reservations"]) == 120 and "NextToken" not in response


def test_one_refused_start_does_not_end_the_scan(aws: EmbeddedAws, make_group) -> None:
    from asg_optimizer.local.faults import FaultInjector

    make_group("web", desired=3, max_size=4, extra_tags={**NO_GRACE, "AsgOptimiser:MaxParallel": "3"})
    with FaultInjector() as faults:
        faults.fail("stepfunctions", "StartExecution", "Throttling")
        result, errored = invoke(aws, "scanner", {"timing": FAST})
    assert not errored, result
    assert len(result["started"]) == 2
    assert [(n["asg_name"], n["why"]) for n in result["not_started"]] == [("web", "StartExecution failed: Throttling")]
    assert {e["name"] for e in executions(aws)} == set(result["started"])
