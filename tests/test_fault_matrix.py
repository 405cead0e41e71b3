"""The fault matrix: every swap path survives injected AWS faults with no capacity dip, no orphan, nothing lost.

Each case runs a real execution on the embedded AWS with faults injected into the task functions' AWS calls (or the
world changed under the execution), then asserts the path taken AND that the invariant checker saw no violation.
"""

from __future__ import annotations

import json

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.faults import FaultInjector
from asg_optimizer.local.invariants import InvariantChecker
from tasks.aws.instance_types import forget_catalog
from tests.conftest import FAST
from tests.workflow_helpers import (
    cause,
    launched_by,
    members,
    refusal,
    settings,
    state_of,
    states_entered,
    wait_for_state,
)

SWAP_OPERATIONS = [
    ("autoscaling", "DescribeAutoScalingGroups"),
    ("ec2", "DescribeInstances"),
    ("autoscaling", "DescribeLifecycleHooks"),
    ("dynamodb", "UpdateItem"),  # the instance claim, the group's lease and its release
    ("ec2", "DescribeInstanceTypes"),
    ("ec2", "DescribeSpotPriceHistory"),
    ("dynamodb", "BatchGetItem"),  # the candidate pools' cooldowns and the spot quota
    ("ec2", "CreateFleet"),
    ("ec2", "DescribeInstanceStatus"),
    ("autoscaling", "UpdateAutoScalingGroup"),
    ("autoscaling", "AttachInstances"),
    ("autoscaling", "TerminateInstanceInAutoScalingGroup"),  # AttachSpot retires at once: the spot is InService
]  # no Suspend/ResumeProcesses: the on-demand leaves in the attach's own section, so the zones never stay unbalanced


@pytest.fixture
def check(aws: EmbeddedAws, make_group):  # type: ignore[no-untyped-def]
    # Full (desired == max) and 2/1 over two zones: a swap in the fuller zone must raise MaxSize, and would
    # suspend AZRebalance were the on-demand not retired in the attach's own section.
    make_group("web", desired=3, max_size=3)
    with InvariantChecker(["web"]) as checker:
        yield checker
    assert checker.finish() == []


def on_demand_of(aws: EmbeddedAws) -> str:
    """An instance in the group's fuller zone (where one more instance unbalances the zones)."""
    instances = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])[
        "AutoScalingGroups"
    ][0]["Instances"]
    zones = [i["AvailabilityZone"] for i in instances]
    fuller = max(set(zones), key=zones.count)
    return sorted(i["InstanceId"] for i in instances if i["AvailabilityZone"] == fuller)[0]


def retried(aws: EmbeddedAws, arn: str, state: str) -> int:
    """How many times a task state's Lambda was scheduled (1 = no retry)."""
    pages = aws.client("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=arn)
    events = [e for page in pages for e in page["events"]]
    count, current = 0, None
    for event in events:
        if event["type"].endswith("StateEntered"):
            current = event["stateEnteredEventDetails"]["name"]
        elif event["type"] == "LambdaFunctionScheduled" and current == state:
            count += 1
    return count


def test_throttling_on_every_step_succeeds_through_retries(aws: EmbeddedAws, check: InvariantChecker) -> None:
    on_demand = on_demand_of(aws)
    before = settings(aws, "web")
    forget_catalog()  # so the instance types are read (and throttled) in this execution
    with FaultInjector() as faults:
        for service, operation in SWAP_OPERATIONS:
            faults.fail(service, operation, "Throttling")
        arn = aws.start_swap("web", on_demand, timing=FAST)
        described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert {f.operation for f in faults.faults if f.fired} == {op for _, op in SWAP_OPERATIONS}
    for state in ("Validate", "LaunchSpot", "CheckSpot", "AttachSpot"):  # the states that call AWS here
        assert retried(aws, arn, state) >= 2, f"{state} was not retried"
    assert state_of(aws, on_demand) == "terminated"
    assert settings(aws, "web") == before


def test_attach_rejected_with_resource_contention_is_retried(aws: EmbeddedAws, check: InvariantChecker) -> None:
    with FaultInjector() as faults:
        faults.fail("autoscaling", "AttachInstances", "ResourceContention", times=2)
        arn = aws.start_swap("web", on_demand_of(aws), timing=FAST)
        described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert retried(aws, arn, "AttachSpot") == 3


@pytest.mark.parametrize(
    ("service", "operation"),
    [("dynamodb", "UpdateItem"), ("ec2", "CreateFleet"), ("autoscaling", "UpdateAutoScalingGroup"),
     ("autoscaling", "AttachInstances"), ("autoscaling", "TerminateInstanceInAutoScalingGroup")],
)
def test_lambda_crash_after_the_call_is_rerun_without_doing_it_twice(
    aws: EmbeddedAws, check: InvariantChecker, service: str, operation: str
) -> None:
    on_demand = on_demand_of(aws)
    others = sorted(set(members(aws, "web")) - {on_demand})
    with FaultInjector() as faults:
        faults.crash_after(service, operation)
        arn = aws.start_swap("web", on_demand, timing=FAST)
        described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert faults.log == [f"{operation}: crash after call 1"]
    spots = launched_by(aws, described["name"])
    assert len(spots) == 1, "the re-run launched a second spot"
    assert members(aws, "web") == {**dict.fromkeys(others, "InService"), spots[0]["InstanceId"]: "InService"}
    assert state_of(aws, on_demand) == "terminated"


def test_capacity_error_at_launch_changes_nothing(aws: EmbeddedAws, check: InvariantChecker) -> None:
    before = settings(aws, "web")
    with FaultInjector() as faults:
        faults.fail("ec2", "CreateFleet", "InsufficientInstanceCapacity")
        arn = aws.start_swap("web", on_demand_of(aws), timing=FAST)
        described = aws.wait(arn)
    assert described["status"] == "FAILED"
    assert "InsufficientInstanceCapacity" in cause(described)
    assert states_entered(aws, arn)[-4:] == ["LaunchSpot", "Cleanup", "RestoreAfterFailure", "SwapFailed"]
    assert launched_by(aws, described["name"]) == []
    assert settings(aws, "web") == before


def test_spot_interrupted_while_booting_is_cleaned_up(aws: EmbeddedAws, check: InvariantChecker) -> None:
    aws.ec2_model.boot_delay_seconds = float("inf")  # it boots for as long as the test needs: no race with the poll
    on_demand = on_demand_of(aws)
    arn = aws.start_swap("web", on_demand, timing={**FAST, "boot_max_polls": 60})
    wait_for_state(aws, arn, "CheckSpot")
    spot = launched_by(aws, arn.rsplit(":", 1)[-1])[0]["InstanceId"]
    aws.client("ec2").terminate_instances(InstanceIds=[spot])  # EC2 reclaimed it
    described = aws.wait(arn)
    assert described["error"] == "SpotNotReady"
    assert cause(described) == f"spot {spot} is terminated before passing its status checks"
    assert members(aws, "web")[on_demand] == "InService"


def test_group_deleted_mid_flight_leaves_no_spot(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("doomed", desired=1, max_size=2)
    aws.ec2_model.boot_held = True  # the spot stays initializing until the world has changed, however slow the machine
    arn = aws.start_swap("doomed", raw["Instances"][0]["InstanceId"], timing={**FAST, "boot_max_polls": 100})
    wait_for_state(aws, arn, "CheckSpot")
    aws.client("autoscaling").delete_auto_scaling_group(AutoScalingGroupName="doomed", ForceDelete=True)
    aws.ec2_model.boot_held = False  # the world has changed: the spot may boot now
    described = aws.wait(arn)
    assert described["error"] == "GroupNotFound"
    assert states_entered(aws, arn)[-4:] == ["AttachSpot", "Cleanup", "RestoreAfterFailure", "SwapFailed"]
    assert json.loads(described.get("output") or "{}") == {}
    assert [s["State"]["Name"] for s in launched_by(aws, described["name"])] == ["terminated"]


def test_scale_in_during_the_swap_keeps_capacity(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("busy", desired=3, max_size=4)
    on_demand = raw["Instances"][0]["InstanceId"]  # moto scales in the oldest instance first: this one
    aws.ec2_model.boot_held = True  # the spot stays initializing until the world has changed, however slow the machine
    with InvariantChecker(["busy"]) as checker:
        arn = aws.start_swap("busy", on_demand, timing={**FAST, "boot_max_polls": 100})
        wait_for_state(aws, arn, "CheckSpot")
        aws.client("autoscaling").set_desired_capacity(AutoScalingGroupName="busy", DesiredCapacity=2)
        checker.external(on_demand)
        aws.ec2_model.boot_held = False  # the world has changed: the spot may boot now
        described = aws.wait(arn)
        assert checker.finish() == []
    assert described["error"] == "OnDemandGone"
    assert cause(described) == f"on-demand {on_demand} is gone in ASG busy; not attaching"
    assert [s["State"]["Name"] for s in launched_by(aws, described["name"])] == ["terminated"]
    assert sorted(members(aws, "busy")) == sorted(i["InstanceId"] for i in raw["Instances"][1:])


def test_status_checks_fail(aws: EmbeddedAws, check: InvariantChecker) -> None:
    on_demand = on_demand_of(aws)
    aws.client("autoscaling").create_or_update_tags(Tags=[{
        "ResourceId": "web", "ResourceType": "auto-scaling-group", "Key": "AsgOptimiser:AllowedTypes",
        "Value": "m5.large", "PropagateAtLaunch": False}])
    aws.ec2_model.impaired_types.add("m5.large")
    described = aws.wait(aws.start_swap("web", on_demand, timing=FAST))
    assert described["error"] == "SpotNotReady"
    assert [s["State"]["Name"] for s in launched_by(aws, described["name"])] == ["terminated"]
    assert members(aws, "web")[on_demand] == "InService"


def test_on_demand_terminated_by_someone_else_mid_flight(aws: EmbeddedAws, check: InvariantChecker) -> None:
    aws.ec2_model.boot_held = True  # the spot stays initializing until the world has changed, however slow the machine
    on_demand = on_demand_of(aws)
    arn = aws.start_swap("web", on_demand, timing={**FAST, "boot_max_polls": 100})
    wait_for_state(aws, arn, "CheckSpot")
    check.external(on_demand)
    aws.client("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=on_demand, ShouldDecrementDesiredCapacity=False
    )
    aws.ec2_model.boot_held = False  # the world has changed: the spot may boot now
    described = aws.wait(arn)
    assert described["error"] == "OnDemandGone"
    assert [s["State"]["Name"] for s in launched_by(aws, described["name"])] == ["terminated"]


def test_same_instance_triggered_twice_at_once(aws: EmbeddedAws, check: InvariantChecker) -> None:
    from datetime import UTC, datetime, timedelta

    from tasks.core.naming import execution_name

    on_demand, now = on_demand_of(aws), datetime.now(UTC)
    arns = [aws.start_swap("web", on_demand, timing=FAST, name=execution_name("web", on_demand, now + timedelta(s)))
            for s in (0, 1)]
    results = [aws.wait(arn) for arn in arns]
    assert sorted(json.loads(r["output"]).get("outcome", "swapped") for r in results) == ["refused", "swapped"]
    loser = next(r for r in results if json.loads(r["output"]).get("outcome") == "refused")
    assert refusal(loser)[0] in ("SwapInFlight", "InstanceNotEligible") and launched_by(aws, loser["name"]) == []


def test_malformed_policy_tag_changes_nothing(aws: EmbeddedAws, check: InvariantChecker) -> None:
    aws.client("autoscaling").create_or_update_tags(Tags=[{
        "ResourceId": "web", "ResourceType": "auto-scaling-group", "Key": "AsgOptimiser:MaxParallel",
        "Value": "zero", "PropagateAtLaunch": False}])
    before = settings(aws, "web")
    response = aws.client("lambda").invoke(FunctionName="asg-optimizer-scanner", Payload=b"{}")
    result = json.loads(response["Payload"].read())
    assert result["started"] == []
    assert result["skipped_groups"] == [{"asg_name": "web", "why": (
        "ASG web: tag AsgOptimiser:MaxParallel='zero' is malformed: expected a whole number 1 or more")}]
    assert settings(aws, "web") == before


@pytest.mark.parametrize(("asg", "instance", "error"), [("nope", None, "GroupNotFound"),
                                                        ("web", "i-0123456789abcdef0", "InstanceNotEligible")])
def test_manual_replace_of_a_bad_group_or_instance(aws: EmbeddedAws, check: InvariantChecker, asg: str,
                                                   instance: str | None, error: str) -> None:
    before = settings(aws, "web")
    described = aws.wait(aws.start_swap(asg, instance or on_demand_of(aws), reason="manual", timing=FAST))
    assert refusal(described)[0] == error
    assert launched_by(aws, described["name"]) == []
    assert settings(aws, "web") == before


def test_the_checker_itself_catches_each_kind_of_breach(aws: EmbeddedAws, make_group, network) -> None:
    """The invariants are only proof if the checker can fail: break each one by hand."""
    from asg_optimizer.local.group_builder import IMAGE_ID

    make_group("victim", desired=2, max_size=3)
    with InvariantChecker(["victim"]) as checker:
        victim = sorted(members(aws, "victim"))[0]
        aws.client("autoscaling").update_auto_scaling_group(AutoScalingGroupName="victim", MaxSize=4)
        aws.client("ec2").terminate_instances(InstanceIds=[victim])  # an on-demand gone with no replacement
        # moto replaces lost instances at once; a member stuck Pending makes in-service drop below desired
        from moto.autoscaling.models import autoscaling_backends

        group = autoscaling_backends["123456789012"]["us-east-1"].autoscaling_groups["victim"]
        group.instance_states[0].lifecycle_state = "Pending"
        checker.sample("by hand")
        aws.client("ec2").run_instances(  # a spot of ours outside any group
            ImageId=IMAGE_ID, MinCount=1, MaxCount=1, SubnetId=network.subnets["a"],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "AsgOptimiser:Replaces",
                                                                      "Value": victim}]}])
        found = checker.finish()
    assert f"after by hand: on-demand {victim} terminated without its replacement InService" in found
    assert any(v.startswith("after by hand: ASG victim has 1 InService, below 2") for v in found)
    assert any(v.startswith("spot i-") and v.endswith("is running outside any group") for v in found)
    assert "ASG victim max_size is 4, was 3" in found


@pytest.mark.parametrize("a_paused_after", ["UpdateAutoScalingGroup", "AttachInstances"])
def test_a_plan_made_from_a_stale_read_is_made_again_when_the_read_under_the_lease_fails(
        aws: EmbeddedAws, make_group, a_paused_after: str) -> None:
    """The soak's leaked MaxSize slot and its refused attach: B's AttachSpot reads the full group in the middle of
    A's section and records the plan made from that read with its lease: after A's MaxSize raise (3/4: room, so B
    plans no slot) or after A's attach (4/4: B plans MaxSize 5). A gives its slot back (3/3 again), so B's read is
    stale and B reads again under the lease, and that read fails. B's retry must plan again from the group as it
    is, not apply the recorded plan: no slot is refused by AttachInstances; MaxSize 5 given back by one slot leaves
    MaxSize 4 for good (the soak's `max_size is 11, was 10`)."""
    from asg_optimizer.local import interleaving

    raw = make_group("full", desired=3, max_size=3, extra_tags={"AsgOptimiser:MaxParallel": "2"})
    first, second = (i["InstanceId"] for i in raw["Instances"][:2])
    before = settings(aws, "full")
    with InvariantChecker(["full"]) as checker, FaultInjector() as faults:
        with interleaving.pause_after("attach-spot", a_paused_after) as holding:
            a = aws.start_swap("full", first, timing=FAST)
            holding.wait()  # A holds the lease: MaxSize 4 (desired 3, or 4 once its spot is attached)
            with interleaving.pause_after("attach-spot", "DescribeAutoScalingGroups") as reading:
                b = aws.start_swap("full", second, timing=FAST)
                reading.wait()  # B planned from that read
                holding.resume()
                assert aws.wait(a, timeout=60)["status"] == "SUCCEEDED"  # MaxSize 3 again, the record says so
                stale_read_fails = faults.fail("autoscaling", "DescribeAutoScalingGroups", "InternalError")
        described = aws.wait(b, timeout=60)
        assert checker.finish() == []
    assert stale_read_fails.fired == 1
    assert faults.trail[0].execution == described["name"] and faults.trail[0].function.endswith("attach-spot")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert retried(aws, b, "AttachSpot") == 2
    assert settings(aws, "full") == before  # MaxSize 3: B's own slot was taken and given back
