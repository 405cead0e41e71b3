"""LaunchSpot against what EC2 documents for CreateFleet, on an embedded AWS as strict as EC2: prices per OS, no
MaxPrice (EC2 caps at on-demand), ClientToken idempotency, quota errors in the Errors array, and launch templates a
fleet cannot use."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from asg_optimizer.local import seam
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.faults import FaultInjector
from asg_optimizer.local.platforms import SQL_SERVER_IMAGE, WINDOWS, WINDOWS_IMAGE
from tasks.aws.prices import forget_spot_prices
from tasks.core.naming import execution_name
from tests.conftest import FAST
from tests.workflow_helpers import (
    cause,
    cooling,
    launched_by,
    refusal,
    settings,
    spot_fleet_request,
    state_of,
    states_entered,
)


def swap(aws: EmbeddedAws, asg: str, instance_id: str, later: int = 0) -> tuple[str, dict[str, Any]]:
    name = execution_name(asg, instance_id, datetime.now(UTC) + timedelta(seconds=later))
    arn = aws.start_swap(asg, instance_id, timing=FAST, name=name)
    return arn, aws.wait(arn)


def test_spot_and_on_demand_prices_follow_the_amis_platform_details(aws: EmbeddedAws, make_group) -> None:
    """EC2 prices Windows (and RHEL, SUSE) apart from Linux/UNIX, for spot and on-demand alike; a platform that
    has no published spot price (Windows with SQL Server) is refused before anything is launched."""
    raw = make_group("win", desired=1, max_size=2, image_id=WINDOWS_IMAGE,
                     extra_tags={"AsgOptimiser:AllowedTypes": "m5.large"})
    on_demand = raw["Instances"][0]
    zone = on_demand["AvailabilityZone"]
    market = aws.ec2_model.market
    market.set_price("m5.large", zone, 0.021)  # the Linux/UNIX price: not what a Windows spot costs
    market.set_price("m5.large", zone, 0.0987, platform=WINDOWS)
    arn, described = swap(aws, "win", on_demand["InstanceId"])

    assert described["status"] == "SUCCEEDED", described.get("cause")
    spot = json.loads(described["output"])["spot"]
    assert (spot["on_demand_price"], spot["spot_price"], spot["hourly_saving"]) == (0.188, 0.0987, 0.0893)
    [launched] = launched_by(aws, described["name"])
    assert launched["PlatformDetails"] == WINDOWS

    sql = make_group("sql", desired=1, max_size=2, image_id=SQL_SERVER_IMAGE)
    before = settings(aws, "sql")
    arn, described = swap(aws, "sql", sql["Instances"][0]["InstanceId"])
    reason, why = refusal(described)  # an outcome, not a failure that pages
    assert states_entered(aws, arn)[-3:] == ["Validate", "ReadRefusal", "Refused"]
    assert reason == "UnsupportedPlatform"
    assert why.startswith("platform 'Windows with SQL Server Standard' has no spot price")
    assert launched_by(aws, described["name"]) == [] and settings(aws, "sql") == before


def test_create_fleet_without_max_price_is_capped_at_on_demand_and_not_interrupted_below_it(
        aws: EmbeddedAws, make_group) -> None:
    """AWS advises against a MaxPrice: a spot is interrupted once the spot price passes it. Without one, EC2 caps
    the price at the type's own on-demand price; the candidate pre-filter (spot <= the original's on-demand) stays."""
    raw = make_group("web", desired=1, max_size=2, extra_tags={"AsgOptimiser:AllowedTypes": "m6i.xlarge"})
    on_demand = raw["Instances"][0]
    zone = on_demand["AvailabilityZone"]
    market = aws.ec2_model.market
    market.set_price("m6i.xlarge", zone, 0.05)  # under m5.large's on-demand 0.096: a candidate
    _, described = swap(aws, "web", on_demand["InstanceId"])
    assert described["status"] == "SUCCEEDED", described.get("cause")
    spot_id = json.loads(described["output"])["spot"]["spot_instance_id"]

    market.set_price("m6i.xlarge", zone, 0.12)  # above m5.large's on-demand, below m6i.xlarge's own (0.192)
    assert aws.ec2_model.price_interrupted == []
    assert state_of(aws, spot_id) == "running"
    market.set_price("m6i.xlarge", zone, 0.2)  # above its own on-demand price: EC2's default cap
    assert aws.ec2_model.price_interrupted == [spot_id]


def test_create_fleet_same_client_token_other_request_is_idempotent_parameter_mismatch(
        aws: EmbeddedAws, network, make_group) -> None:
    """EC2: a retry with the same client token and other parameters fails with IdempotentParameterMismatch. A
    LaunchSpot re-run after a crash whose candidates moved must find its own spot and go on, not kill it."""
    raw = make_group("web", desired=1, max_size=2)
    request = spot_fleet_request(raw, network.subnets["a"], "same")
    ec2 = aws.client("ec2")
    first = ec2.create_fleet(**request)
    request["LaunchTemplateConfigs"][0]["Overrides"].append({"InstanceType": "m6i.large",
                                                             "SubnetId": network.subnets["a"]})
    try:
        ec2.create_fleet(**request)
        raise AssertionError("same token, other request: EC2 refuses")
    except ec2.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == "IdempotentParameterMismatch"
    assert first["Instances"][0]["InstanceIds"]

    on_demand = raw["Instances"][0]
    zone = on_demand["AvailabilityZone"]

    def prices_move_after_the_crash(function: str, event: dict[str, Any], result: dict[str, Any],
                                    errored: bool) -> None:
        if function.endswith("launch-spot") and errored:  # between the crash and the retry
            aws.ec2_model.market.set_price("m6i.large", zone, 0.5)  # no longer a candidate
            forget_spot_prices()  # the retry runs in a container that reads prices after the move

    seam.observers.append(prices_move_after_the_crash)
    try:
        with FaultInjector() as faults:
            faults.crash_after("ec2", "CreateFleet")
            arn, described = swap(aws, "web", on_demand["InstanceId"])
    finally:
        seam.observers.remove(prices_move_after_the_crash)
    assert described["status"] == "SUCCEEDED", cause(described)
    assert states_entered(aws, arn)[-1] == "Swapped"
    spots = launched_by(aws, described["name"])
    assert [s["State"]["Name"] for s in spots] == ["running"]
    assert json.loads(described["output"])["spot"]["spot_instance_id"] == spots[0]["InstanceId"]


def test_spot_quota_error_in_create_fleet_errors_is_an_outcome_that_backs_off_the_region(
        aws: EmbeddedAws, make_group) -> None:
    """MaxSpotInstanceCountExceeded in CreateFleet's Errors is the account's spot quota: not capacity, not a bug.
    The swap ends as an outcome, the whole region backs off for a cooldown, and nothing pages."""
    raw = make_group("web", desired=2, max_size=4)
    aws.ec2_model.market.spot_vcpu_quota = 1  # less than any candidate's vCPUs
    before = settings(aws, "web")
    arn, described = swap(aws, "web", raw["Instances"][0]["InstanceId"])

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states_entered(aws, arn)[-3:] == ["LaunchSpot", "Launched", "QuotaExceeded"]
    output = json.loads(described["output"])
    assert output["outcome"] == "quota-exceeded"
    assert output["why"].startswith("spot quota: MaxSpotInstanceCountExceeded")
    assert launched_by(aws, described["name"]) == [] and settings(aws, "web") == before
    assert cooling(aws)["quota#spot#us-east-1"] == "quota-exceeded"

    scan = json.loads(aws.client("lambda").invoke(FunctionName=aws.deployment.function_arns["scanner"],
                                                  Payload=json.dumps({"dry_run": True}))["Payload"].read())
    assert scan["plan"] == []
    assert [s["why"] for s in scan["skipped_groups"]] == [
        "spot quota exceeded in us-east-1 (MaxSpotInstanceCountExceeded): backing off until the cooldown ends"]


def test_launch_templates_create_fleet_cannot_use_are_refused_before_anything_is_launched(
        aws: EmbeddedAws, make_group) -> None:
    """CreateFleet refuses a template with InstanceMarketOptions; EC2 refuses NetworkInterfaces together with the
    subnet the swap launches into. Either is refused by name before a launch, and the group is left as it was."""
    market = make_group("market", desired=1, max_size=2, template_data={
        "InstanceMarketOptions": {"MarketType": "spot"}})
    interfaces = make_group("eni", desired=1, max_size=2, template_data={
        "NetworkInterfaces": [{"DeviceIndex": 0, "Groups": ["sg-0123456789abcdef0"]}]})
    for name, raw, says in (("market", market, "InstanceMarketOptions"), ("eni", interfaces, "NetworkInterfaces")):
        before = settings(aws, name)
        arn, described = swap(aws, name, raw["Instances"][0]["InstanceId"])
        assert described["status"] == "SUCCEEDED", described.get("cause")  # a setting to change, not a page
        output = json.loads(described["output"])
        assert (output["outcome"], output["reason"]) == ("refused", "UnsupportedLaunchTemplate")
        assert output["why"].startswith(f"ASG {name}: launch template sets {says}")
        assert states_entered(aws, arn)[-3:] == ["LaunchSpot", "Launched", "LaunchRefused"]
        assert launched_by(aws, described["name"]) == [] and settings(aws, name) == before
    # the refusal freed the instance's claim: a later swap of it gets as far as LaunchSpot again, not SwapInFlight
    _, again = swap(aws, "market", market["Instances"][0]["InstanceId"], later=2)
    assert json.loads(again["output"])["reason"] == "UnsupportedLaunchTemplate"
