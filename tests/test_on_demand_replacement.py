"""The replacement state machine with market on-demand, end to end on the embedded AWS: the Market choice, the
LaunchOnDemand task and the shared tail (wait, check, attach, retire through the group, cleanup)."""

from __future__ import annotations

import json
from typing import Any

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.invariants import InvariantChecker
from tasks.core.tags import EXECUTION, REPLACES
from tests.conftest import FAST
from tests.workflow_helpers import (
    cause,
    group,
    instances,
    members,
    refusal,
    settings,
    state_of,
    states_entered,
)

ON_DEMAND_PATH = ["HasStartDelay", "Validate", "Market", "LaunchOnDemand", "Launched", "WaitForBoot", "CheckSpot"]
TAIL = ["AttachSpot", "RetireOnDemand", "Retired", "RestoreGroup", "Swapped"]


def start(aws: EmbeddedAws, asg: str, instance_id: str, **extra: Any) -> str:
    payload = {"asg_name": asg, "instance_id": instance_id, "timing": FAST, **extra}
    return aws.client("stepfunctions").start_execution(
        stateMachineArn=aws.deployment.replace_arn, name=f"{asg}-{instance_id}-{extra.get('reason', 'manual')}",
        input=json.dumps(payload))["executionArn"]


def spot_in(aws: EmbeddedAws, asg: str, on_demand: str) -> str:
    """Swap one on-demand to spot the ordinary way; the spot's id."""
    arn = aws.start_swap(asg, on_demand, timing=FAST)
    described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    return str(json.loads(described["output"])["spot"]["spot_instance_id"])


def test_spot_replaced_by_an_on_demand_from_the_group_template_in_the_same_subnet(aws: EmbeddedAws,
                                                                                    make_group) -> None:
    raw = make_group("web", desired=2, max_size=2)
    spot = spot_in(aws, "web", raw["Instances"][0]["InstanceId"])
    spot_subnet = instances(aws, instance_id=spot)[0]["SubnetId"]
    before = settings(aws, "web")
    with InvariantChecker(["web"], watch_spots=True) as watch:
        arn = start(aws, "web", spot, reason="commitment", market="on-demand")
        described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", cause(described)
    path = states_entered(aws, arn)
    assert path[:len(ON_DEMAND_PATH)] == ON_DEMAND_PATH and path[-5:] == TAIL and "LaunchSpot" not in path
    output = json.loads(described["output"])
    new_id = output["spot"]["spot_instance_id"]
    assert output["spot"]["market"] == "on-demand" and output["market"] == "on-demand"
    new = instances(aws, instance_id=new_id)[0]
    assert "InstanceLifecycle" not in new  # on-demand
    assert new["SubnetId"] == spot_subnet and new["InstanceType"] == instances(aws, instance_id=spot)[0]["InstanceType"]
    template = group(aws, "web")["LaunchTemplate"]["LaunchTemplateId"]
    tags = {t["Key"]: t["Value"] for t in new["Tags"]}
    assert tags[REPLACES] == spot and tags[EXECUTION] == described["name"] and tags["team"] == "platform"
    assert tags["aws:ec2launchtemplate:id"] == template
    assert state_of(aws, spot) == "terminated"
    assert members(aws, "web") == {raw["Instances"][1]["InstanceId"]: "InService", new_id: "InService"}
    assert settings(aws, "web") == before  # the full group's MaxSize was raised for the attach and put back
    assert watch.finish() == [] and watch.lowest_in_service("web") >= 2


def test_on_demand_replaced_by_an_on_demand_of_another_type(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("api", desired=1, max_size=3)
    old = raw["Instances"][0]["InstanceId"]
    with InvariantChecker(["api"]) as watch:
        arn = start(aws, "api", old, market="on-demand", instance_type="m5.xlarge")
        described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", cause(described)
    new_id = json.loads(described["output"])["spot"]["spot_instance_id"]
    new = instances(aws, instance_id=new_id)[0]
    assert new["InstanceType"] == "m5.xlarge" and "InstanceLifecycle" not in new
    assert members(aws, "api") == {new_id: "InService"} and state_of(aws, old) == "terminated"
    assert watch.finish() == []


def test_reason_commitment_must_ask_for_on_demand(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=1, max_size=2)
    arn = start(aws, "web", raw["Instances"][0]["InstanceId"], reason="commitment")
    described = aws.wait(arn)
    assert refusal(described) == (
        "InvalidInput", "reason 'commitment' replaces with an on-demand instance: market must be 'on-demand'")
    assert states_entered(aws, arn)[-1] == "Refused"


def test_unknown_market_is_refused_naming_the_value(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=1, max_size=2)
    described = aws.wait(start(aws, "web", raw["Instances"][0]["InstanceId"], market="reserved"))
    assert refusal(described) == ("InvalidInput", "market must be one of spot, on-demand, got 'reserved'")


def test_no_on_demand_capacity_is_an_outcome_and_launches_nothing(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=1, max_size=2, zones=("a",))
    old = raw["Instances"][0]["InstanceId"]
    aws.ec2_model.on_demand_capacity[("m5.large", "us-east-1a")] = 0
    arn = start(aws, "web", old, market="on-demand")
    described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", cause(described)
    output = json.loads(described["output"])
    assert output["outcome"] == "no-capacity" and output["why"] == (
        "InsufficientInstanceCapacity: no on-demand m5.large in us-east-1a")
    assert states_entered(aws, arn)[-1] == "NoCapacity"
    assert members(aws, "web") == {old: "InService"}
    assert instances(aws, **{"tag:" + EXECUTION: described["name"]}) == []


def test_impaired_on_demand_replacement_is_cleaned_up_and_the_spot_stays(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=2, max_size=3)
    spot = spot_in(aws, "web", raw["Instances"][0]["InstanceId"])
    aws.ec2_model.impaired_types.add("m5.2xlarge")
    before = settings(aws, "web")
    with InvariantChecker(["web"], watch_spots=True) as watch:
        arn = start(aws, "web", spot, reason="commitment", market="on-demand", instance_type="m5.2xlarge")
        described = aws.wait(arn)
    assert described["status"] == "FAILED" and described["error"] == "SpotNotReady"
    assert states_entered(aws, arn)[-3:] == ["Cleanup", "RestoreAfterFailure", "SwapFailed"]
    launched = instances(aws, **{"tag:" + EXECUTION: described["name"]})
    assert [i["State"]["Name"] for i in launched] in (["terminated"], ["shutting-down"])
    assert members(aws, "web")[spot] == "InService" and settings(aws, "web") == before
    assert watch.finish() == []
