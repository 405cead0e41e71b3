"""The launch-event trigger: a new on-demand instance of an opted-in group gets a swap that first waits out its
grace period; the same policy applies; a repeated event starts nothing new."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.scheduler import Scheduler
from stack.description import STACK
from tasks import launch_event
from tasks.core.naming import execution_name
from tasks.core.requests import parse_now
from tests.workflow_helpers import states_entered, wait_for_state

SAMPLE = json.loads((Path(__file__).parent / "events" / "asg-instance-launch-successful.json").read_text())


def event_for(asg_name: str, instance_id: str) -> dict[str, Any]:
    """The sample event, for this group and instance (as EventBridge would deliver it)."""
    event = copy.deepcopy(SAMPLE)
    event["detail"].update(AutoScalingGroupName=asg_name, EC2InstanceId=instance_id)
    event["resources"] = [event["resources"][0].replace("autoScalingGroupName/web", f"autoScalingGroupName/{asg_name}"),
                          f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"]
    return event


def handle(aws: EmbeddedAws, event: dict[str, Any]) -> dict[str, Any]:
    env = aws.client("lambda").get_function_configuration(FunctionName=STACK.function("launch-event").name())
    os.environ.update(env["Environment"]["Variables"])
    return launch_event.handler(event, None)


def executions(aws: EmbeddedAws) -> list[dict[str, Any]]:
    return aws.client("stepfunctions").list_executions(stateMachineArn=aws.deployment.replace_arn)["executions"]


def stop_all(aws: EmbeddedAws) -> None:
    for execution in executions(aws):
        if execution["status"] == "RUNNING":
            aws.client("stepfunctions").stop_execution(executionArn=execution["executionArn"])


def test_the_sample_is_the_shape_eventbridge_delivers_and_the_rule_matches_it() -> None:
    rule = next(r for r in STACK.rules if r.function == "launch-event")
    from asg_optimizer.local.scheduler import matches

    assert matches(rule.pattern, SAMPLE)
    assert not matches(rule.pattern, {**SAMPLE, "detail-type": "EC2 Instance Terminate Successful"})
    assert STACK.function("launch-event").handler == "tasks.launch_event.handler"


def test_a_launch_starts_a_swap_that_waits_out_the_grace_period(aws: EmbeddedAws, make_group) -> None:
    group = make_group("web", desired=1, max_size=2, extra_tags={"AsgOptimiser:GracePeriod": "120"})
    instance_id = group["Instances"][0]["InstanceId"]
    event = event_for("web", instance_id)
    runs = Scheduler(aws).deliver(event)  # routed by the stack's rule to the deployed function
    assert [(r.source, r.function, r.errored) for r in runs] == [("instance-launched", "launch-event", False)]
    result = runs[0].result
    name = execution_name("web", instance_id, parse_now(SAMPLE["time"]))  # type: ignore[arg-type]
    assert (result["action"], result["execution"]) == ("replace", name)
    assert 110 <= result["start_delay_seconds"] <= 120
    [execution] = executions(aws)
    assert execution["name"] == name
    described = aws.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    started_with = json.loads(described["input"])
    assert len(started_with.pop("start_id")) == 32  # this start's own id (tasks/dispatch.py start_named)
    assert started_with == {
        "asg_name": "web", "instance_id": instance_id, "reason": "event",
        "timing": {"start_delay_seconds": result["start_delay_seconds"], "boot_poll_seconds": 15,
                   "boot_max_polls": 40, "group_poll_seconds": 10, "group_max_polls": 30,
                   "lb_poll_seconds": 15, "lb_max_polls": 40}}
    wait_for_state(aws, execution["executionArn"], "StartDelay")
    assert "Validate" not in states_entered(aws, execution["executionArn"])

    again = handle(aws, event)  # EventBridge delivers at least once
    assert (again["action"], again["why"]) == ("skip", f"already being replaced by execution {name}")
    assert len(executions(aws)) == 1


def test_a_repeated_event_is_recognised_by_name_even_before_the_listing_shows_it(aws: EmbeddedAws,
                                                                                 make_group) -> None:
    group = make_group("web", desired=1, max_size=2, extra_tags={"AsgOptimiser:GracePeriod": "120"})
    event = event_for("web", group["Instances"][0]["InstanceId"])
    first = handle(aws, event)
    original = launch_event.running_swaps
    launch_event.running_swaps = lambda arn: {}  # type: ignore[assignment]  # as if ListExecutions lagged
    try:
        again = handle(aws, event)
    finally:
        launch_event.running_swaps = original  # type: ignore[assignment]
    assert again["execution"] == first["execution"]
    assert len(executions(aws)) == 1
    stop_all(aws)
    stop_all(aws)


def test_a_second_launch_in_the_group_waits_for_max_parallel(aws: EmbeddedAws, make_group) -> None:
    group = make_group("web", desired=2, max_size=3, extra_tags={"AsgOptimiser:GracePeriod": "60"})
    first, second = sorted(i["InstanceId"] for i in group["Instances"])
    assert handle(aws, event_for("web", first))["action"] == "replace"
    result = handle(aws, event_for("web", second))
    assert (result["action"], result["why"]) == ("skip", "MaxParallel 1 reached (1 in flight, 0 picked now)")
    assert len(executions(aws)) == 1
    stop_all(aws)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"opted_in": False}, "not opted in: tag AsgOptimiser is missing, expected 'true'"),
        ({"extra_tags": {"AsgOptimiser:GracePeriod": "soon"}},
         "ASG web: tag AsgOptimiser:GracePeriod='soon' is malformed: expected a whole number 0 or more"),
        ({"extra_tags": {"AsgOptimiser:MinOnDemand": "1"}},
         "on-demand floor 1 reached (MinOnDemand 1, MinOnDemandPercent 0% of desired 1): "
         "1 on-demand not being replaced, 0 picked now"),
        ({"extra_tags": {"AsgOptimiser:GracePeriod": "7200"}}, re.compile(
         r"grace period too long to wait in the workflow \(timing.start_delay_seconds must be an integer from 0 to "
         r"3600, got 7(200|19\d)\); the scanner will pick it up")),  # 7200 less the instance's age in seconds
    ],
)
def test_the_same_policy_applies(aws: EmbeddedAws, make_group, spec: dict[str, Any], why: str | re.Pattern) -> None:
    group = make_group("web", desired=1, max_size=2, **spec)
    result = handle(aws, event_for("web", group["Instances"][0]["InstanceId"]))
    assert result["action"] == "skip"
    assert why.fullmatch(result["why"]) if isinstance(why, re.Pattern) else result["why"] == why, result["why"]
    assert executions(aws) == []


def test_a_spot_launch_and_an_unknown_group_are_skipped(aws: EmbeddedAws, make_group) -> None:
    assert handle(aws, SAMPLE)["why"] == "ASG not found"
    group = make_group("web", desired=1, max_size=2, extra_tags={"AsgOptimiser:GracePeriod": "0"})
    instance_id = group["Instances"][0]["InstanceId"]
    assert handle(aws, event_for("web", "i-0000000000000abcd"))["why"] == "not a member of ASG web"
    from moto.ec2.models import ec2_backends

    ec2_backends["123456789012"]["us-east-1"].get_instance(instance_id).lifecycle = "spot"  # a mixed-policy spot
    assert handle(aws, event_for("web", instance_id))["why"] == "already spot"
    assert executions(aws) == []


def test_an_event_without_the_fields_is_refused(aws: EmbeddedAws) -> None:
    from tasks.core.errors import InvalidInput

    with pytest.raises(InvalidInput) as raised:
        handle(aws, {**SAMPLE, "detail": {"AutoScalingGroupName": "web"}})
    assert str(raised.value) == "event detail.EC2InstanceId must be a non-empty string, got None"
