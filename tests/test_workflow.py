"""The replacement workflow end to end on the embedded AWS: execution history AND AWS state afterwards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.invariants import InvariantChecker
from tasks.core.naming import execution_name
from tasks.core.tags import EXECUTION, REPLACES
from tests.conftest import FAST
from tests.workflow_helpers import (
    cause,
    group,
    holders,
    instances,
    launched_by,
    members,
    refusal,
    settings,
    state_of,
    states_entered,
    wait_for_state,
)

HAPPY = ["HasStartDelay", "Validate", "Market", "LaunchSpot", "Launched", "WaitForBoot", "CheckSpot", "SpotReady"]
PINNED = {"AsgOptimiser:AllowedTypes": "m5.large"}  # one candidate type, so a test can starve or impair it
TAIL = ["AttachSpot", "RetireOnDemand", "Retired", "RestoreGroup", "Swapped"]
FAILED_TAIL = ["Cleanup", "RestoreAfterFailure", "SwapFailed"]


def swap(aws: EmbeddedAws, asg: str, instance_id: str, **timing: int) -> tuple[str, dict]:
    arn = aws.start_swap(asg, instance_id, timing={**FAST, **timing})
    return arn, aws.wait(arn)


def test_happy_path_replaces_on_demand_with_spot(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=2, max_size=4)
    on_demand = raw["Instances"][0]["InstanceId"]
    aws.ec2_model.boot_status_reads = 1  # the first status answer says initializing: the loop runs twice, always
    before = settings(aws, "web")
    with InvariantChecker(["web"]) as watch:
        arn, described = swap(aws, "web", on_demand)

    assert described["status"] == "SUCCEEDED", described.get("cause")
    path = states_entered(aws, arn)
    assert path[:len(HAPPY)] == HAPPY and path[-5:] == TAIL
    assert path.count("CheckSpot") >= 2, "the boot poll loop must really loop"
    output = json.loads(described["output"])
    spot_id = output["spot"]["spot_instance_id"]

    assert state_of(aws, on_demand) == "terminated"
    assert members(aws, "web") == {raw["Instances"][1]["InstanceId"]: "InService", spot_id: "InService"}
    assert settings(aws, "web") == before  # desired, MaxSize, suspended processes, tags: all as they were
    spot = instances(aws, instance_id=spot_id)[0]
    assert spot["InstanceLifecycle"] == "spot"
    assert spot["SubnetId"] == raw["Instances"][0].get("SubnetId", spot["SubnetId"])
    assert spot["Placement"]["AvailabilityZone"] == raw["Instances"][0]["AvailabilityZone"]
    tags = {t["Key"]: t["Value"] for t in spot["Tags"]}
    assert tags[REPLACES] == on_demand
    assert tags[EXECUTION] == described["name"]
    assert tags["team"] == "platform"  # propagated from the group
    assert watch.lowest_in_service("web") >= 2


def test_group_at_max_swaps_and_puts_max_back(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("full", desired=2, max_size=2)
    before = settings(aws, "full")
    _, described = swap(aws, "full", raw["Instances"][0]["InstanceId"])
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert json.loads(described["output"])["attach"]["raised_max_to"] == 3
    assert settings(aws, "full") == before
    assert len(members(aws, "full")) == 2


def test_user_suspended_processes_stay_suspended(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("paused", desired=1, max_size=3)
    aws.client("autoscaling").suspend_processes(AutoScalingGroupName="paused", ScalingProcesses=["AZRebalance"])
    before = settings(aws, "paused")
    _, described = swap(aws, "paused", raw["Instances"][0]["InstanceId"])
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert settings(aws, "paused") == before


def test_no_spot_capacity_launches_nothing_and_changes_nothing(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=2, max_size=4, extra_tags=PINNED)
    on_demand = raw["Instances"][0]
    aws.ec2_model.spot_capacity[("m5.large", on_demand["AvailabilityZone"])] = 0
    before = settings(aws, "web")
    arn, described = swap(aws, "web", on_demand["InstanceId"])

    assert described["status"] == "SUCCEEDED"  # no capacity is an outcome, not a failure
    assert states_entered(aws, arn)[-3:] == ["LaunchSpot", "Launched", "NoCapacity"]
    output = json.loads(described["output"])
    assert output["outcome"] == "no-capacity"
    assert launched_by(aws, described["name"]) == []
    assert state_of(aws, on_demand["InstanceId"]) == "running"
    assert settings(aws, "web") == before


def test_spot_failing_status_checks_is_terminated(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=2, max_size=4, extra_tags=PINNED)
    on_demand = raw["Instances"][0]["InstanceId"]
    aws.ec2_model.impaired_types.add("m5.large")
    aws.ec2_model.boot_status_reads = 1  # initializing first, then impaired, however fast the machine
    before = settings(aws, "web")
    arn, described = swap(aws, "web", on_demand)

    assert described["status"] == "FAILED"
    assert described["error"] == "SpotNotReady"
    assert cause(described).endswith("failed its status checks (instance impaired, system impaired)")
    path = states_entered(aws, arn)
    assert path[-4:] == ["CheckSpot", *FAILED_TAIL] and path.count("CheckSpot") >= 2  # initializing, then impaired
    spots = launched_by(aws, described["name"])
    assert len(spots) == 1 and spots[0]["State"]["Name"] == "terminated"
    assert members(aws, "web")[on_demand] == "InService"
    assert settings(aws, "web") == before


def test_spot_never_ready_within_the_polls_is_terminated(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=1, max_size=2)
    on_demand = raw["Instances"][0]["InstanceId"]
    aws.ec2_model.boot_delay_seconds = 600
    arn, described = swap(aws, "web", on_demand, boot_max_polls=2, boot_poll_seconds=2)

    assert described["error"] == "SpotNotReady"
    assert "not ready after 2 polls (state running, instance initializing, system initializing)" in cause(described)
    assert states_entered(aws, arn).count("CheckSpot") == 2
    assert [s["State"]["Name"] for s in launched_by(aws, described["name"])] == ["terminated"]
    assert state_of(aws, on_demand) == "running"


def test_on_demand_gone_before_attach_cleans_up_the_spot(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=2, max_size=4)
    on_demand = raw["Instances"][0]["InstanceId"]
    aws.ec2_model.boot_held = True  # the spot stays initializing until the world has changed, however slow the machine
    arn = aws.start_swap("web", on_demand, timing={**FAST, "boot_max_polls": 100})
    wait_for_state(aws, arn, "CheckSpot")
    aws.client("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=on_demand, ShouldDecrementDesiredCapacity=False
    )
    aws.ec2_model.boot_held = False  # the world has changed: the spot may boot now
    described = aws.wait(arn)

    assert described["error"] == "OnDemandGone"
    assert cause(described) == f"on-demand {on_demand} is gone in ASG web; not attaching"
    assert states_entered(aws, arn)[-4:] == ["AttachSpot", *FAILED_TAIL]
    assert [s["State"]["Name"] for s in launched_by(aws, described["name"])] == ["terminated"]
    g = group(aws, "web")
    assert g["MaxSize"] == 4 and g["SuspendedProcesses"] == []
    assert not any(t["Key"].startswith("AsgOptimiser:Hold") for t in g["Tags"])


def test_group_that_lost_its_opt_in_tag_is_refused(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=2, max_size=4)
    aws.client("autoscaling").delete_tags(
        Tags=[{"ResourceId": "web", "ResourceType": "auto-scaling-group", "Key": "AsgOptimiser"}]
    )
    before = settings(aws, "web")
    arn, described = swap(aws, "web", raw["Instances"][0]["InstanceId"])

    assert refusal(described) == ("NotOptedIn", "ASG web is not opted in: tag AsgOptimiser is missing, expected 'true'")
    assert states_entered(aws, arn) == ["HasStartDelay", "Validate", "ReadRefusal", "Refused"]
    assert launched_by(aws, described["name"]) == []
    assert settings(aws, "web") == before


def test_unknown_group_and_instance_are_refused(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=1, max_size=2)
    _, described = swap(aws, "nope", "i-0123456789abcdef0")
    assert refusal(described) == ("GroupNotFound", "ASG nope does not exist")
    _, described = swap(aws, "web", "i-0123456789abcdef0")
    assert refusal(described) == (
        "InstanceNotEligible",
        "instance i-0123456789abcdef0 is not a member of ASG web",
    )


def test_bad_timing_input_is_refused_naming_the_key(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=1, max_size=2)
    arn = aws.start_swap("web", raw["Instances"][0]["InstanceId"], timing={"boot_max_polls": 0})
    described = aws.wait(arn)
    assert refusal(described) == ("InvalidInput", "timing.boot_max_polls must be an integer from 1 to 200, got 0")


def test_two_executions_for_one_instance_swap_it_once(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=2, max_size=4)
    on_demand = raw["Instances"][0]["InstanceId"]
    now = datetime.now(UTC)
    first = aws.start_swap("web", on_demand, timing=FAST, name=execution_name("web", on_demand, now))
    second = aws.start_swap(
        "web", on_demand, timing=FAST, name=execution_name("web", on_demand, now + timedelta(seconds=1))
    )
    results = [aws.wait(first), aws.wait(second)]

    assert sorted(json.loads(r["output"]).get("outcome", "swapped") for r in results) == ["refused", "swapped"]
    loser = next(r for r in results if json.loads(r["output"]).get("outcome") == "refused")
    assert refusal(loser)[0] in ("SwapInFlight", "InstanceNotEligible")
    assert launched_by(aws, loser["name"]) == []
    spots = [i for i in instances(aws) if i.get("InstanceLifecycle") == "spot"]
    assert len(spots) == 1
    assert group(aws, "web")["DesiredCapacity"] == 2
    assert state_of(aws, on_demand) == "terminated"


def test_a_group_that_loses_its_opt_in_mid_swap_is_denied_by_iam_as_in_aws(aws: EmbeddedAws, make_group) -> None:
    """The deployed IAM lets the functions change opted-in groups only; the embedded AWS denies the same calls, so
    the attach fails here as it would in an account, and the swap cleans up its spot."""
    raw = make_group("web", desired=2, max_size=4)
    on_demand = raw["Instances"][0]["InstanceId"]
    aws.ec2_model.boot_held = True  # the spot stays initializing until the opt-in is gone, however slow the machine
    arn = aws.start_swap("web", on_demand, timing={**FAST, "boot_max_polls": 100})
    wait_for_state(aws, arn, "CheckSpot")
    aws.client("autoscaling").delete_tags(  # a person, not a function: allowed
        Tags=[{"ResourceId": "web", "ResourceType": "auto-scaling-group", "Key": "AsgOptimiser"}])
    aws.ec2_model.boot_held = False
    described = aws.wait(arn)

    assert described["status"] == "FAILED"
    assert states_entered(aws, arn)[-4:] == ["AttachSpot", *FAILED_TAIL]
    assert "AccessDenied" in cause(described) and "autoscaling:" in cause(described)
    assert [s["State"]["Name"] for s in launched_by(aws, described["name"])] in (["terminated"], ["shutting-down"])
    assert members(aws, "web")[on_demand] == "InService"


def test_an_on_demand_that_must_wait_has_az_rebalance_suspended_until_it_leaves(aws: EmbeddedAws, make_group) -> None:
    """AttachSpot defers the suspension to when the on-demand cannot leave in its section: here a member the team's
    launch hook holds in Pending:Wait counts toward desired without serving, so RetireOnDemand must poll while the
    spot unbalances the zones (3 in one zone, 1 in the other)."""
    make_group("w", desired=2, max_size=4, extra_tags={"AsgOptimiser:LaunchHooks": "bypass"})
    autoscaling = aws.client("autoscaling")
    autoscaling.put_lifecycle_hook(LifecycleHookName="bootstrap", AutoScalingGroupName="w", HeartbeatTimeout=300,
                                   LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING", DefaultResult="CONTINUE")
    autoscaling.set_desired_capacity(AutoScalingGroupName="w", DesiredCapacity=3)
    instances = group(aws, "w")["Instances"]
    [pending] = [i for i in instances if i["LifecycleState"] == "Pending:Wait"]
    on_demand = next(i["InstanceId"] for i in instances
                     if i["LifecycleState"] == "InService" and i["AvailabilityZone"] == pending["AvailabilityZone"])
    arn = aws.start_swap("w", on_demand, timing={**FAST, "group_max_polls": 60})
    wait_for_state(aws, arn, "WaitForGroup")
    name = arn.rsplit(":", 1)[-1]
    assert settings(aws, "w")["suspended"] == ["AZRebalance"] and holders(aws, "w") == [name]
    assert members(aws, "w")[on_demand] == "InService"
    autoscaling.complete_lifecycle_action(AutoScalingGroupName="w", LifecycleHookName="bootstrap",
                                          LifecycleActionResult="CONTINUE", InstanceId=pending["InstanceId"])
    described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert state_of(aws, on_demand) in ("shutting-down", "terminated")
    assert (settings(aws, "w")["suspended"], settings(aws, "w")["max"], holders(aws, "w")) == ([], 4, [])
