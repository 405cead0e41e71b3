"""Read what the group's load balancers say about its instances (one call per target group / classic ELB)."""

from __future__ import annotations

from tasks.aws.clients import client
from tasks.core.load_balancing import Health
from tasks.core.model import Group


def group_health(group: Group) -> Health:
    """Target group ARN / `elb:<name>` -> instance id -> state, for every load balancer of the group."""
    health: dict[str, dict[str, str]] = {}
    for arn in group.target_group_arns:
        found = client("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        health[arn] = {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in found}
    for name in group.load_balancer_names:
        found = client("elb").describe_instance_health(LoadBalancerName=name)["InstanceStates"]
        health[f"elb:{name}"] = {s["InstanceId"]: s["State"] for s in found}
    return health


def longest_drain_seconds(group: Group) -> int:
    """The longest deregistration delay (target groups) or connection-draining timeout (classic ELBs)."""
    delays = [0]
    for arn in group.target_group_arns:
        attributes = client("elbv2").describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        delays += [int(a["Value"]) for a in attributes if a["Key"] == "deregistration_delay.timeout_seconds"]
    for name in group.load_balancer_names:
        attributes = client("elb").describe_load_balancer_attributes(LoadBalancerName=name)["LoadBalancerAttributes"]
        draining = attributes.get("ConnectionDraining", {})
        if draining.get("Enabled"):
            delays.append(int(draining.get("Timeout", 300)))
    return max(delays)
