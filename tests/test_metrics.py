"""The dashboard's custom metrics, each from the handler that knows it: a refused swap counts in SwapsSkipped (per
group), the scheduled scan reports the opted-in fleet's spot share. The share's arithmetic is pure."""

from __future__ import annotations

import json

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.metrics_sink import metric_values
from tasks.core.model import Group, Instance, Member
from tasks.core.spot_share import spot_share_percent
from tests.conftest import FAST
from tests.workflow_helpers import refusal


def _instance(instance_id: str, lifecycle: str | None) -> Instance:
    return Instance(instance_id, "running", "m5.large", "subnet-1", "us-east-1a", lifecycle=lifecycle)


def _group(name: str, *members: tuple[str, str]) -> Group:
    return Group(name=name, desired=len(members), min_size=0, max_size=10,
                 members=tuple(Member(i, state) for i, state in members))


def test_spot_share_counts_in_service_members_of_every_group() -> None:
    groups = [_group("a", ("i-1", "InService"), ("i-2", "InService")),
              _group("b", ("i-3", "InService"), ("i-4", "Pending"), ("i-5", "InService"))]
    instances = {"i-1": _instance("i-1", "spot"), "i-2": _instance("i-2", None), "i-3": _instance("i-3", "spot"),
                 "i-4": _instance("i-4", "spot"), "i-5": _instance("i-5", None)}
    assert spot_share_percent(groups, instances) == 50.0  # i-4 is not serving yet


def test_spot_share_leaves_out_vanished_instances_and_is_none_without_serving_capacity() -> None:
    assert spot_share_percent([_group("a", ("i-1", "InService"), ("i-2", "InService"))],
                              {"i-1": _instance("i-1", "spot")}) == 100.0
    assert spot_share_percent([_group("a", ("i-1", "Pending"))], {"i-1": _instance("i-1", "spot")}) is None
    assert spot_share_percent([], {}) is None


def test_a_refused_swap_counts_in_swaps_skipped_for_its_group(aws: EmbeddedAws, make_group) -> None:
    make_group("legacy", desired=1, max_size=2, opted_in=False)
    member = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["legacy"])[
        "AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    described = aws.wait(aws.start_swap("legacy", member, reason="manual", timing=FAST))
    assert refusal(described)[0] == "NotOptedIn"
    assert metric_values("SwapsSkipped") == [
        ({"AutoScalingGroup": "legacy", "service": "asg-optimizer", "reason": "NotOptedIn"}, [1.0])]


def test_a_swap_that_runs_is_not_skipped(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=2, max_size=4)
    described = aws.wait(aws.start_swap("web", raw["Instances"][0]["InstanceId"], timing=FAST))
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"]).get("outcome") != "refused"
    assert metric_values("SwapsSkipped") == []


def test_the_scheduled_scan_reports_the_fleets_spot_share_and_a_dry_run_does_not(aws: EmbeddedAws,
                                                                                  make_group) -> None:
    make_group("web", desired=2, max_size=4)
    scan = aws.client("lambda")
    scan.invoke(FunctionName="asg-optimizer-scanner", Payload=json.dumps({"dry_run": True}).encode())
    assert metric_values("SpotShare") == []
    scan.invoke(FunctionName="asg-optimizer-scanner", Payload=json.dumps({"timing": FAST}).encode())
    assert metric_values("SpotShare") == [({"service": "asg-optimizer"}, [0.0])]  # read before any swap ran
