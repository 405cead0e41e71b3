"""Build Auto Scaling groups in the embedded AWS (demo fleet and tests): a VPC, subnets, launch templates."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import boto3

from tasks.core.tags import OPT_IN

IMAGE_ID = "ami-0a1b2c3d4e5f60718"
NEXT_IMAGE_ID = "ami-0b2c3d4e5f6071829"  # version 2 of every group's template: what a rollout moves to


@dataclass(frozen=True)
class GroupSpec:
    name: str
    desired: int
    max_size: int
    min_size: int = 0
    instance_type: str = "m5.large"
    opted_in: bool = True
    extra_tags: dict[str, str] = field(default_factory=dict)
    zones: tuple[str, ...] = ("a", "b")
    target_group_arns: tuple[str, ...] = ()
    load_balancer_names: tuple[str, ...] = ()
    capacity_rebalance: bool = False
    image_id: str = IMAGE_ID  # the AMI decides the platform (asg_optimizer.local.platforms)
    template_data: dict[str, object] = field(default_factory=dict)  # more launch template settings


@dataclass
class Network:
    vpc_id: str
    subnets: dict[str, str]  # zone suffix -> subnet id
    region: str = "us-east-1"


VPC_CIDR = "10.40.0.0/16"


def create_network(region: str = "us-east-1", prefix_length: int = 24) -> Network:
    """A VPC with one subnet per zone a, b, c; a /24 holds 251 instances (moto hands out addresses as AWS does,
    five reserved), so a fleet of hundreds of instances needs a shorter prefix (e.g. 20: 4091 per zone)."""
    ec2 = boto3.client("ec2", region_name=region)
    vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    blocks = ipaddress.ip_network(VPC_CIDR).subnets(new_prefix=prefix_length)
    subnets = {}
    for suffix, block in zip("abc", blocks, strict=False):
        subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=str(block), AvailabilityZone=f"{region}{suffix}")
        subnets[suffix] = subnet["Subnet"]["SubnetId"]
    return Network(vpc_id, subnets, region)


def create_group(network: Network, spec: GroupSpec) -> dict[str, Any]:
    """An ASG with its own launch template, `desired` on-demand instances spread over `zones`."""
    ec2 = boto3.client("ec2", region_name=network.region)
    autoscaling = boto3.client("autoscaling", region_name=network.region)
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{spec.name}-lt",
        LaunchTemplateData={"ImageId": spec.image_id, "InstanceType": spec.instance_type, **spec.template_data},
    )["LaunchTemplate"]
    tags = [{"Key": "team", "Value": "platform", "PropagateAtLaunch": True},
            {"Key": "Name", "Value": spec.name, "PropagateAtLaunch": True}]
    if spec.opted_in:
        tags.append({"Key": OPT_IN, "Value": "true", "PropagateAtLaunch": False})
    tags += [{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in spec.extra_tags.items()]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=spec.name,
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Latest"},
        MinSize=spec.min_size, MaxSize=spec.max_size, DesiredCapacity=spec.desired,
        VPCZoneIdentifier=",".join(network.subnets[z] for z in spec.zones),
        HealthCheckGracePeriod=0,
        TargetGroupARNs=list(spec.target_group_arns), LoadBalancerNames=list(spec.load_balancer_names),
        CapacityRebalance=spec.capacity_rebalance,
        Tags=[{"ResourceId": spec.name, "ResourceType": "auto-scaling-group", **t} for t in tags],
    )
    return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[spec.name])["AutoScalingGroups"][0]


def create_target_group(network: Network, name: str, *, interval: int = 5, healthy_threshold: int = 2,
                        deregistration_delay: int = 30) -> str:
    """An HTTP target group (instance targets) in the network's VPC; returns its ARN."""
    elbv2 = boto3.client("elbv2")
    arn = elbv2.create_target_group(
        Name=name, Protocol="HTTP", Port=80, VpcId=network.vpc_id, TargetType="instance",
        HealthCheckIntervalSeconds=interval, HealthyThresholdCount=healthy_threshold,
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": str(deregistration_delay)}])
    return str(arn)


def create_classic_load_balancer(network: Network, name: str, *, interval: int = 5, healthy_threshold: int = 2,
                                 draining_seconds: int = 30) -> str:
    """A classic ELB over the network's subnets, with a health check and connection draining on."""
    elb = boto3.client("elb")
    elb.create_load_balancer(
        LoadBalancerName=name, Subnets=list(network.subnets.values()),
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstanceProtocol": "HTTP", "InstancePort": 80}],
    )
    elb.configure_health_check(LoadBalancerName=name, HealthCheck={
        "Target": "HTTP:80/", "Interval": interval, "Timeout": 2, "HealthyThreshold": healthy_threshold,
        "UnhealthyThreshold": 2})
    elb.modify_load_balancer_attributes(LoadBalancerName=name, LoadBalancerAttributes={
        "ConnectionDraining": {"Enabled": True, "Timeout": draining_seconds}})
    return name


def attach_spot(network: Network, group: dict[str, Any], zone: str = "a", instance_type: str = "m5.large") -> str:
    """A spot from the group's own template, attached to it, as a finished swap leaves one; returns its id."""
    fleet = boto3.client("ec2").create_fleet(
        Type="instant", TargetCapacitySpecification={"TotalTargetCapacity": 1, "DefaultTargetCapacityType": "spot"},
        SpotOptions={"AllocationStrategy": "price-capacity-optimized"},
        LaunchTemplateConfigs=[{"LaunchTemplateSpecification": {
            "LaunchTemplateId": group["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
            "Overrides": [{"InstanceType": instance_type, "SubnetId": network.subnets[zone]}]}],
    )
    spot = str(fleet["Instances"][0]["InstanceIds"][0])
    boto3.client("autoscaling").attach_instances(AutoScalingGroupName=group["AutoScalingGroupName"],
                                                 InstanceIds=[spot])
    return spot


def new_template_version(group: dict[str, Any], image_id: str = NEXT_IMAGE_ID) -> str:
    """A new version of the group's launch template with another AMI (the group launches `$Latest`); its number."""
    created = boto3.client("ec2").create_launch_template_version(
        LaunchTemplateId=group["LaunchTemplate"]["LaunchTemplateId"], SourceVersion="1",
        LaunchTemplateData={"ImageId": image_id})
    return str(created["LaunchTemplateVersion"]["VersionNumber"])
