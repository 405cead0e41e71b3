"""The invariant checker reads the emulator's own state: it must report what the API reports, for every group
(DescribeAutoScalingGroups pages at 50; the checker once checked only the first page)."""

from __future__ import annotations

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.fleet import GroupSpec, Network, create_group
from asg_optimizer.local.invariants import InvariantChecker

MANY = 55  # more than one page of DescribeAutoScalingGroups (50)


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
