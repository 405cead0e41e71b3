"""Read groups and instances from AWS into the core's plain facts (paginators; one call per page)."""

from __future__ import annotations

from typing import Any

from tasks.aws import client
from tasks.core.errors import GroupNotFound
from tasks.core.model import Group, Instance, Member, Override, TemplateRef


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
    return groups[0]


def describe_group(name: str) -> Group:
    return group_from_response(describe_group_raw(name))


def instance_from_response(raw: dict[str, Any]) -> Instance:
    return Instance(
        instance_id=raw["InstanceId"],
        state=raw["State"]["Name"],
        instance_type=raw.get("InstanceType", ""),
        subnet_id=raw.get("SubnetId"),
        availability_zone=raw.get("Placement", {}).get("AvailabilityZone", ""),
        lifecycle=raw.get("InstanceLifecycle"),
        tags={t["Key"]: t.get("Value", "") for t in raw.get("Tags", [])},
        launch_time=str(raw.get("LaunchTime", "")) or None,
    )


# Instance states in which a spot of ours still costs money or may still come up.
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def describe_instances(filters: list[dict[str, Any]] | None = None, ids: list[str] | None = None) -> list[Instance]:
    """All matching instances, 1,000 a page."""
    kwargs: dict[str, Any] = {"Filters": filters or []}
    if ids:
        kwargs["InstanceIds"] = ids
    else:
        kwargs["PaginationConfig"] = {"PageSize": 1000}
    pages = client("ec2").get_paginator("describe_instances").paginate(**kwargs)
    return [instance_from_response(i) for page in pages for r in page["Reservations"] for i in r["Instances"]]


def describe_instance(instance_id: str) -> Instance | None:
    """One instance, or None when EC2 no longer knows it."""
    from botocore.exceptions import ClientError

    try:
        found = describe_instances(ids=[instance_id])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "InvalidInstanceID.NotFound":
            return None
        raise
    return found[0] if found else None


def lifecycle_hooks(name: str) -> list[tuple[str, str]]:
    """(LifecycleHookName, LifecycleTransition) of the group's hooks; DescribeLifecycleHooks is not paginated."""
    hooks = client("autoscaling").describe_lifecycle_hooks(AutoScalingGroupName=name)["LifecycleHooks"]
    return [(h["LifecycleHookName"], h["LifecycleTransition"]) for h in hooks]
