"""The invariant checker reads the emulator's own state: it must report what the API reports, for every group
(DescribeAutoScalingGroups pages at 50; the checker once checked only the first page)."""

from __future__ import annotations

import pytest

from asg_optimizer.local.clock import ManualClock
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import IMAGE_ID, GroupSpec, Network, create_group, create_target_group
from asg_optimizer.local.invariants import InvariantChecker
from tasks.core.tags import REPLACES

MANY = 55  # more than one page of DescribeAutoScalingGroups (50)


@pytest.fixture
def aws(clocked_aws: EmbeddedAws) -> EmbeddedAws:
    return clocked_aws


def _api_view(aws: EmbeddedAws) -> dict[str, tuple]:
    pages = aws.client("autoscaling").get_paginator("describe_auto_scaling_groups").paginate()
    return {
        g["AutoScalingGroupName"]: (
            g["DesiredCapacity"], g["MinSize"], g["MaxSize"],
            frozenset(p["ProcessName"] for p in g["SuspendedProcesses"]),
            frozenset((t["Key"], t["Value"]) for t in g["Tags"]),
            tuple((i["InstanceId"], i["LifecycleState"], i["ProtectedFromScaleIn"]) for i in g["Instances"]),
        )
        for page in pages for g in page["AutoScalingGroups"]
    }


@pytest.mark.long
def test_the_checker_reads_what_the_api_reports_and_judges_every_group(aws: EmbeddedAws, network: Network) -> None:
    names = [f"g{i:02d}" for i in range(MANY)]
    for name in names:
        create_group(network, GroupSpec(name, desired=1, max_size=2))
    autoscaling = aws.client("autoscaling")
    autoscaling.suspend_processes(AutoScalingGroupName="g07", ScalingProcesses=["AZRebalance"])
    first = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["g09"])["AutoScalingGroups"][0]
    autoscaling.set_instance_protection(AutoScalingGroupName="g09", ProtectedFromScaleIn=True,
                                        InstanceIds=[first["Instances"][0]["InstanceId"]])
    checker = InvariantChecker(names)
    seen = {
        g.name: (g.desired, g.min_size, g.max_size, g.suspended, g.tags,
                 tuple((m.instance_id, m.lifecycle_state, m.protected) for m in g.members))
        for g in checker._groups()
    }
    assert seen == _api_view(aws)
    ec2 = aws.client("ec2")
    described = {i["InstanceId"]: (i["State"]["Name"], i.get("InstanceLifecycle") == "spot")
                 for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert {i: (v.state, v.spot) for i, v in checker._instances().items()} == described

    # a breach in the last group, past the first page, is found
    last = names[-1]
    with InvariantChecker(names) as checker:
        victim = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[last])[
            "AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
        aws.client("ec2").terminate_instances(InstanceIds=[victim])
        checker.sample("by hand")
        found = checker.finish()
    assert {s.asg_name for s in checker.samples} == set(names)
    assert f"after by hand: on-demand {victim} terminated without its replacement InService" in found


# --- web groups: a retirement is judged when it starts (the group deregisters the on-demand and drains it) ---

def _web_group_with_a_spot(aws: EmbeddedAws, network: Network, clock: ManualClock) -> tuple[str, str, str]:
    """A one-instance group behind a target group (healthy after 10 s, drains 30 s) plus an attached spot that
    replaces its on-demand; returns (group, on-demand, spot). The spot is still in its initial health checks."""
    arn = create_target_group(network, "web-tg", interval=5, healthy_threshold=2, deregistration_delay=30)
    created = create_group(network, GroupSpec("web", desired=1, max_size=2, target_group_arns=(arn,)))
    on_demand = created["Instances"][0]["InstanceId"]
    clock.advance(10)
    spot = aws.client("ec2").run_instances(
        ImageId=IMAGE_ID, InstanceType="m5.large", MinCount=1, MaxCount=1,
        InstanceMarketOptions={"MarketType": "spot"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": REPLACES, "Value": on_demand}]}],
    )["Instances"][0]["InstanceId"]
    aws.client("autoscaling").attach_instances(AutoScalingGroupName="web", InstanceIds=[spot])
    return "web", on_demand, spot


def _retire(aws: EmbeddedAws, instance_id: str) -> None:
    aws.client("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=instance_id, ShouldDecrementDesiredCapacity=True)


def test_checker_blames_an_on_demand_retired_before_its_spot_is_healthy_behind_the_load_balancer(
        aws: EmbeddedAws, network: Network, clock: ManualClock) -> None:
    name, on_demand, spot = _web_group_with_a_spot(aws, network, clock)
    with InvariantChecker([name]) as checker:
        _retire(aws, on_demand)  # the spot is InService but still in its initial health checks
        checker.sample("by hand")
    assert (f"after by hand: on-demand {on_demand} retired before its replacement {spot} was healthy behind the "
            "load balancers") in checker.violations


def test_checker_does_not_blame_a_draining_on_demand_for_its_spot_reclaimed_meanwhile(
        aws: EmbeddedAws, network: Network, clock: ManualClock) -> None:
    name, on_demand, spot = _web_group_with_a_spot(aws, network, clock)
    clock.advance(10)  # the spot passed its health checks
    with InvariantChecker([name]) as checker:
        _retire(aws, on_demand)
        checker.sample("retired")
        aws.client("ec2").terminate_instances(InstanceIds=[spot])  # reclaimed while the on-demand drains
        clock.advance(31)
        checker.sample("drained")
        states = {i["InstanceId"]: i["State"]["Name"] for r in aws.client("ec2").describe_instances(
            InstanceIds=[on_demand])["Reservations"] for i in r["Instances"]}
    assert states[on_demand] in ("shutting-down", "terminated")
    assert not [v for v in checker.violations if on_demand in v]
