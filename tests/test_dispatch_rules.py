"""Starting executions as Step Functions and EventBridge really behave: a repeated StartExecution with the same
name and input returns the first execution, names are for CloudWatch Logs too, and an invocation that fails is
retried by EventBridge and must find its claim released."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.events import emit, spot_event
from asg_optimizer.local.faults import FaultInjector
from asg_optimizer.local.group_builder import GroupSpec, create_group, create_network
from tasks.aws.executions import start_named, start_swap
from tasks.core.naming import execution_name
from tasks.core.timing import Timing
from tests.workflow_helpers import group


def test_start_execution_same_name_and_input_returns_the_first_execution_not_a_new_one(aws: EmbeddedAws) -> None:
    """Step Functions: StartExecution with the name and input of a running execution succeeds and returns that
    execution (idempotent). The second caller did not start anything and must not report a start."""
    arn = aws.deployment.replace_arn
    payload = {"asg_name": "web", "instance_id": "i-0123456789abcdef0", "reason": "manual",
               "timing": {"start_delay_seconds": 3600}}  # waits in StartDelay: still RUNNING when repeated
    name = execution_name("web", "i-0123456789abcdef0", datetime(2026, 1, 31, 22, 30, tzinfo=UTC))
    assert start_named(arn, name, payload) is True
    assert start_named(arn, name, payload) is False
    at = datetime(2026, 1, 31, 22, 31, tzinfo=UTC)
    timing = Timing(start_delay_seconds=3600)
    assert start_swap(arn, "web", "i-0123456789abcdef1", reason="scheduled", timing=timing, at=at)[1] is True
    assert start_swap(arn, "web", "i-0123456789abcdef1", reason="scheduled", timing=timing, at=at)[1] is False
    listed = aws.client("stepfunctions").list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]
    assert len(listed) == 2


def test_rebalance_invocation_that_fails_to_start_releases_its_claim_for_eventbridges_retry(aws: EmbeddedAws) -> None:
    """EventBridge retries a failed target invocation with the same event. A rebalance whose StartExecution was
    throttled must not have spent its once-per-cooldown claim: the retry starts the swap."""
    network = create_network()
    raw = create_group(network, GroupSpec("web", desired=1, max_size=2, zones=("a",)))
    fleet = aws.client("ec2").create_fleet(
        Type="instant", TargetCapacitySpecification={"TotalTargetCapacity": 1, "DefaultTargetCapacityType": "spot"},
        SpotOptions={"AllocationStrategy": "price-capacity-optimized"},
        LaunchTemplateConfigs=[{"LaunchTemplateSpecification": {
            "LaunchTemplateId": raw["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
            "Overrides": [{"InstanceType": "m5.large", "SubnetId": network.subnets["a"]}]}],
    )
    spot = fleet["Instances"][0]["InstanceIds"][0]
    aws.client("autoscaling").attach_instances(AutoScalingGroupName="web", InstanceIds=[spot])
    event = spot_event(spot, "us-east-1a", rebalance=True)

    with FaultInjector() as faults:
        faults.fail("stepfunctions", "StartExecution", "Throttling")
        failed = emit(aws, event).results["spot-rebalance"]
    assert failed["errorType"] == "AwsThrottled"
    retried = emit(aws, event).results["spot-rebalance"]  # EventBridge's retry: the same event
    assert retried.get("started") is True, retried
    described = aws.client("stepfunctions").describe_execution(
        executionArn=aws.deployment.replace_arn.replace(":stateMachine:", ":execution:")
        + f":{retried['execution_name']}")
    assert json.loads(described["input"])["reason"] == "rebalance"
    assert group(aws, "web")["DesiredCapacity"] == 2
