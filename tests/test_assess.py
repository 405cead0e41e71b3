"""Issue 17 item 5: `asg-optimizer assess`, before anyone opts in: every group, whether it could be opted in or
why not, its on-demand count, the saving at today's spot prices, sorted by saving; near-miss tags with a "did you
mean"; table, `-o json` and `-o csv`; nothing changed."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import boto3
import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from tasks.aws.prices import snapshot
from tasks.core.assessment import BLOCKED, OPTED_IN, READY, blockers, near_misses, saving_of
from tasks.core.model import Group, Instance, Member
from tasks.core.prices import LINUX, snapshot_price
from tests.cli_helpers import cli, cli_json, table_row
from tests.cli_helpers import snapshot as aws_state


@pytest.mark.parametrize(("tags", "found"), [
    ({"AsgOptimizer": "true"}, ["tag AsgOptimizer='true' is not ours: did you mean AsgOptimiser=true?"]),
    ({"asgoptimiser": "true"}, ["tag asgoptimiser='true' is not ours: did you mean AsgOptimiser=true?"]),
    ({"AsgOptimiser": "True"},
     ["tag AsgOptimiser='True' does not opt in (only 'true' does): did you mean AsgOptimiser=true?"]),
    ({"AsgOptimiser:MinOndemand": "1"},
     ["tag AsgOptimiser:MinOndemand is not a policy tag: did you mean AsgOptimiser:MinOnDemand?"]),
    ({"AsgOptimizer:MaxParallel": "2"},
     ["tag AsgOptimizer:MaxParallel='2' is not ours: did you mean AsgOptimiser:MaxParallel?"]),
    ({"AsgOptimiser": "true", "AsgOptimiser:MaxParallel": "2", "AsgOptimiser:Hold:x": "1", "team": "a"}, []),
    ({"AsgOptimiser": "false"}, []),  # a deliberate "no" is not a near miss
])
def test_near_miss_tags(tags: dict[str, str], found: list[str]) -> None:
    assert near_misses(tags) == found


def group(name: str = "g", template: bool = True, **kwargs: object) -> Group:
    return Group(name=name, desired=1, min_size=0, max_size=2, tags={},
                 members=(Member("i-1", "InService", "Healthy", False, "us-east-1a", "m5.large"),),
                 launch_template_id="lt-1" if template else None, **kwargs)  # type: ignore[arg-type]


def test_blockers_name_the_setting() -> None:
    assert blockers(group(), [], None, None) == []
    assert blockers(group(template=False), [], None, "old-lc") == [
        "uses launch configuration old-lc: swaps launch from a launch template"]
    assert blockers(group(), [], 40, None) == ["mixes spot already (OnDemandPercentageAboveBaseCapacity=40)"]
    assert blockers(group(), [("boot", "autoscaling:EC2_INSTANCE_LAUNCHING")], None, None) == [
        "has launch lifecycle hook 'boot', which attached spots skip; tag AsgOptimiser:LaunchHooks=bypass to swap "
        "anyway"]
    assert blockers(group(), [("drain", "autoscaling:EC2_INSTANCE_TERMINATING")], 100, None) == []


def test_saving_is_on_demand_minus_the_cheapest_compatible_spot() -> None:
    instances = [Instance("i-1", "running", "m5.large", None, "us-east-1a"),
                 Instance("i-2", "running", "m5.large", None, "us-east-1b"),
                 Instance("i-3", "running", "m5.large", None, "us-east-1a", lifecycle="spot"),  # not counted
                 Instance("i-4", "running", "x9.large", None, "us-east-1a")]  # no price: unpriced
    spot = {("m5.large", "us-east-1a"): 0.05, ("m5a.large", "us-east-1a"): 0.04, ("m5.large", "us-east-1b"): 0.2}
    compatible = {"m5.large": ("m5.large", "m5a.large"), "x9.large": ("x9.large",)}
    assert saving_of(instances, {"m5.large": 0.096}, spot, compatible) == (round(0.096 - 0.04, 4), 1)
    # a spot dearer than on-demand saves nothing (never a negative saving): i-2 adds 0


def spot_price(instance_type: str, zone: str) -> float:
    history = boto3.client("ec2").describe_spot_price_history(
        InstanceTypes=[instance_type], ProductDescriptions=["Linux/UNIX"], StartTime=datetime.now(UTC),
        Filters=[{"Name": "availability-zone", "Values": [zone]}])["SpotPriceHistory"]
    return min(float(h["SpotPrice"]) for h in history)


def test_assess_the_fleet_table_json_csv(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=2, max_size=4)  # opted in already
    make_group("api", desired=3, max_size=4, opted_in=False, extra_tags={"AsgOptimizer": "true"})
    make_group("hooked", desired=1, max_size=2, opted_in=False)
    boto3.client("autoscaling").put_lifecycle_hook(AutoScalingGroupName="hooked", LifecycleHookName="bootstrap",
                                                   LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING")
    make_group("empty", desired=0, max_size=2, opted_in=False, extra_tags={"AsgOptimiser:Windw": "22-06"})
    before = aws_state(aws)

    data = cli_json("assess")
    rows = {g["asg_name"]: g for g in data["groups"]}
    assert [g["asg_name"] for g in data["groups"]] == ["api", "web", "hooked", "empty"]  # biggest saving first
    assert [(rows[n]["status"], rows[n]["on_demand"]) for n in ("api", "web", "hooked", "empty")] == [
        (READY, 3), (OPTED_IN, 2), (BLOCKED, 1), (READY, 0)]
    assert rows["hooked"]["why_not"] == [
        "has launch lifecycle hook 'bootstrap', which attached spots skip; tag AsgOptimiser:LaunchHooks=bypass to "
        "swap anyway"]
    assert rows["api"]["misconfigured"] == ["tag AsgOptimizer='true' is not ours: did you mean AsgOptimiser=true?"]
    assert rows["empty"]["misconfigured"] == [
        "tag AsgOptimiser:Windw is not a policy tag: did you mean AsgOptimiser:Window?"]
    # the saving, recomputed from the embedded AWS's own prices: on-demand (snapshot) minus the spot price in force
    od = snapshot_price(snapshot(), "us-east-1", "m5.large", LINUX)
    assert od is not None
    zones = [i["AvailabilityZone"] for i in boto3.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["api"])["AutoScalingGroups"][0]["Instances"]]
    expected = round(sum(od - spot_price("m5.large", z) for z in zones), 4)
    assert rows["api"]["hourly_saving"] == pytest.approx(expected, abs=1e-4) and expected > 0
    assert rows["api"]["monthly_saving"] == round(rows["api"]["hourly_saving"] * 730, 2)
    assert data["fleet"]["on_demand"] == 6 and data["fleet"]["groups"] == 4

    table = cli("assess")
    assert table.exit_code == 0, table.output
    assert table_row(table.stdout, "")[1:4] == ["4 groups", "3 not blocked", "6"]  # totals first
    assert table_row(table.stdout, "us-east-1")[1:3] == ["api", "ready"]

    result = cli("-o", "csv", "assess")
    assert result.exit_code == 0, result.output
    parsed = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["asg_name"] for r in parsed] == ["api", "web", "hooked", "empty"]
    assert parsed[2]["status"] == "blocked" and parsed[2]["why_not"].startswith("has launch lifecycle hook")
    assert float(parsed[0]["hourly_saving"]) == rows["api"]["hourly_saving"]
    assert aws_state(aws) == before  # read only


@pytest.mark.long
def test_assess_all_regions_reads_every_enabled_region(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=1, max_size=2, opted_in=False)
    enabled = sorted(r["RegionName"] for r in boto3.client("ec2").describe_regions()["Regions"])
    data = cli_json("assess", "--all-regions")
    assert data["regions"] == enabled and len(enabled) > 1
    assert [(g["region"], g["asg_name"]) for g in data["groups"]] == [("us-east-1", "web")]  # the others are empty
    assert cli_json("assess")["regions"] == ["us-east-1"]
