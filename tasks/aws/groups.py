"""Read Auto Scaling groups into the core's plain facts: one group by name, or fleet-wide in pages and batches so
the number of calls does not grow with the number of groups (100 groups a DescribeAutoScalingGroups page)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tasks.aws.clients import batches, client
from tasks.core.errors import GroupNotFound
from tasks.core.lifecycle_hooks import launch_hook_refusal
from tasks.core.model import Group, Member, Override, TemplateRef
from tasks.core.policy import PolicyError, parse_policy
from tasks.core.tags import OPT_IN, OPT_IN_VALUE

GROUP_PAGE = 100  # DescribeAutoScalingGroups MaxRecords limit
MEMBERSHIP_BATCH = 50  # DescribeAutoScalingInstances limit
ACTIVE_REFRESH = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")


def template_ref(raw: dict[str, Any] | None) -> TemplateRef | None:
    if not raw or not (raw.get("LaunchTemplateId") or raw.get("LaunchTemplateName")):
        return None
    return TemplateRef(raw.get("LaunchTemplateId"), raw.get("LaunchTemplateName"), raw.get("Version") or "$Default")


def group_from_response(raw: dict[str, Any]) -> Group:
    template = raw.get("LaunchTemplate") or (
        raw.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {}).get("LaunchTemplateSpecification", {})
    )
    return Group(
        name=raw["AutoScalingGroupName"],
        desired=raw["DesiredCapacity"],
        min_size=raw["MinSize"],
        max_size=raw["MaxSize"],
        tags={t["Key"]: t.get("Value", "") for t in raw.get("Tags", [])},
        members=tuple(
            Member(
                instance_id=i["InstanceId"],
                lifecycle_state=i["LifecycleState"],
                health_status=i.get("HealthStatus", "Healthy"),
                protected=bool(i.get("ProtectedFromScaleIn", False)),
                availability_zone=i.get("AvailabilityZone", ""),
                instance_type=i.get("InstanceType", ""),
                launch_template=template_ref(i.get("LaunchTemplate")),
                weighted_capacity=i.get("WeightedCapacity"),
            )
            for i in raw.get("Instances", [])
        ),
        suspended=frozenset(p["ProcessName"] for p in raw.get("SuspendedProcesses", [])),
        launch_template_id=template.get("LaunchTemplateId"),
        launch_template_name=template.get("LaunchTemplateName"),
        launch_template_version=template.get("Version") or "$Default",
        health_check_grace_period=raw.get("HealthCheckGracePeriod", 0),
        status=raw.get("Status"),
        zones=tuple(raw.get("AvailabilityZones", [])),
        target_group_arns=tuple(raw.get("TargetGroupARNs") or ()),
        load_balancer_names=tuple(raw.get("LoadBalancerNames") or ()),
        capacity_rebalance=bool(raw.get("CapacityRebalance", False)),
        overrides=tuple(
            Override(o.get("InstanceType", ""), template_ref(o.get("LaunchTemplateSpecification")),
                     o.get("WeightedCapacity"))
            for o in raw.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {}).get("Overrides") or ()
        ),
        desired_capacity_type=raw.get("DesiredCapacityType") or "units",
    )


def propagated_tags(raw_group: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in raw_group.get("Tags", []) if t.get("PropagateAtLaunch")}


def describe_group_raw(name: str) -> dict[str, Any]:
    groups = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ]
    if not groups:
        raise GroupNotFound(f"ASG {name} does not exist")
    group: dict[str, Any] = groups[0]
    return group


def group_exists(name: str) -> bool:
    try:
        describe_group_raw(name)
    except GroupNotFound:
        return False
    return True


def describe_group(name: str) -> Group:
    return group_from_response(describe_group_raw(name))


def lifecycle_hooks(name: str) -> list[tuple[str, str]]:
    """(LifecycleHookName, LifecycleTransition) of the group's hooks; DescribeLifecycleHooks is not paginated."""
    hooks = client("autoscaling").describe_lifecycle_hooks(AutoScalingGroupName=name)["LifecycleHooks"]
    return [(h["LifecycleHookName"], h["LifecycleTransition"]) for h in hooks]


def _group_pages(**kwargs: Any) -> list[dict[str, Any]]:
    pages = client("autoscaling").get_paginator("describe_auto_scaling_groups").paginate(
        **kwargs, PaginationConfig={"PageSize": GROUP_PAGE}
    )
    return [group for page in pages for group in page["AutoScalingGroups"]]


def opted_in_groups() -> list[dict[str, Any]]:
    """Every group tagged `AsgOptimiser=true`, filtered by the service rather than read and dropped here."""
    return _group_pages(Filters=[{"Name": f"tag:{OPT_IN}", "Values": [OPT_IN_VALUE]}])


def named_groups(names: Sequence[str]) -> list[dict[str, Any]]:
    """The named groups whether opted in or not (so a restricted scan can say why it skips one)."""
    return [group for chunk in batches(names, GROUP_PAGE) for group in _group_pages(AutoScalingGroupNames=chunk)]


def every_group() -> list[dict[str, Any]]:
    """Every group in the region, opted in or not (the CLI's name patterns and `assess` read them all)."""
    return _group_pages()


def groups_with_tag_keys(keys: Sequence[str]) -> list[dict[str, Any]]:
    """Groups carrying any of `keys`, opted in or not."""
    return _group_pages(Filters=[{"Name": "tag-key", "Values": list(keys)}])


def group_members(ids: Iterable[str]) -> dict[str, str]:
    """instance id -> its ASG, for those of `ids` that are in a group."""
    unique = sorted(set(ids))
    autoscaling = client("autoscaling")
    found: dict[str, str] = {}
    for chunk in batches(unique, MEMBERSHIP_BATCH):
        for item in autoscaling.describe_auto_scaling_instances(InstanceIds=chunk)["AutoScalingInstances"]:
            found[item["InstanceId"]] = item["AutoScalingGroupName"]
    return found


def active_refreshes(asg_names: Iterable[str]) -> dict[str, str]:
    """Groups with an instance refresh under way -> why. One call per group asked about: the scanner asks only
    about groups it is about to start swaps in (there is no fleet-wide refresh listing)."""
    autoscaling = client("autoscaling")
    busy: dict[str, str] = {}
    for name in sorted(set(asg_names)):
        refreshes = autoscaling.describe_instance_refreshes(AutoScalingGroupName=name, MaxRecords=5)
        for refresh in refreshes["InstanceRefreshes"]:
            if refresh.get("Status") in ACTIVE_REFRESH:
                busy[name] = f"instance refresh {refresh['InstanceRefreshId']} is {refresh['Status']}"
                break
    return busy


def launch_hook_blocks(groups: Iterable[Group]) -> dict[str, str]:
    """Groups whose launch lifecycle hooks attached spots would skip -> why (unless the group's policy bypasses
    them). One DescribeLifecycleHooks per group asked about: the CLI's plan asks about the groups it would swap
    in (the scanner reads no hooks: Validate's refusal cools the group)."""
    blocked: dict[str, str] = {}
    for group in groups:
        try:
            bypass = parse_policy(group.name, group.tags, default_grace_period=0).bypass_launch_hooks
        except PolicyError:
            continue  # the selection already skipped it by name
        why = launch_hook_refusal(group.name, lifecycle_hooks(group.name), bypass=bypass)
        if why:
            blocked[group.name] = why
    return blocked
