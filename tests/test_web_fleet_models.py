"""The embedded AWS's load-balancer, lifecycle-hook and mixed-instances models: each rule AWS documents, by name.

Time is a ManualClock in AWS seconds, so "healthy after interval x threshold" is exact on any machine.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from asg_optimizer.local.clock import ManualClock
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import (
    IMAGE_ID,
    GroupSpec,
    Network,
    create_classic_load_balancer,
    create_group,
    create_network,
    create_target_group,
)

LAUNCHING, TERMINATING = "autoscaling:EC2_INSTANCE_LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATING"


@pytest.fixture
def aws(clocked_aws: EmbeddedAws) -> EmbeddedAws:
    return clocked_aws


@pytest.fixture
def network(aws: EmbeddedAws) -> Network:
    return create_network()


def target_states(aws: EmbeddedAws, arn: str) -> dict[str, tuple[str, str | None]]:
    found = aws.client("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: (d["TargetHealth"]["State"], d["TargetHealth"].get("Reason")) for d in found}


def clb_states(aws: EmbeddedAws, name: str) -> dict[str, tuple[str, str]]:
    found = aws.client("elb").describe_instance_health(LoadBalancerName=name)["InstanceStates"]
    return {s["InstanceId"]: (s["State"], s["Description"]) for s in found}


def group(aws: EmbeddedAws, name: str) -> dict[str, Any]:
    return aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def lifecycle(aws: EmbeddedAws, name: str) -> dict[str, str]:
    return {i["InstanceId"]: i["LifecycleState"] for i in group(aws, name)["Instances"]}


def test_target_turns_healthy_after_interval_times_healthy_threshold(aws: EmbeddedAws, network: Network,
                                                                     clock: ManualClock) -> None:
    arn = create_target_group(network, "web-tg", interval=10, healthy_threshold=3)
    created = create_group(network, GroupSpec("web", desired=1, max_size=2, target_group_arns=(arn,)))
    instance = created["Instances"][0]["InstanceId"]
    assert target_states(aws, arn) == {instance: ("initial", "Elb.RegistrationInProgress")}
    clock.advance(10)
    assert target_states(aws, arn) == {instance: ("initial", "Elb.InitialHealthChecking")}
    clock.advance(19.9)
    assert target_states(aws, arn)[instance][0] == "initial"
    clock.advance(0.1)
    assert target_states(aws, arn) == {instance: ("healthy", None)}


def test_never_healthy_type_goes_unhealthy_after_unhealthy_threshold(aws: EmbeddedAws, network: Network,
                                                                     clock: ManualClock) -> None:
    aws.load_balancers.never_healthy.add("c5.large")
    arn = create_target_group(network, "web-tg", interval=5, healthy_threshold=2)
    created = create_group(network, GroupSpec("web", desired=1, max_size=2, instance_type="c5.large",
                                              target_group_arns=(arn,)))
    instance = created["Instances"][0]["InstanceId"]
    clock.advance(9)  # the default UnhealthyThresholdCount is 2: 2 x 5 s
    assert target_states(aws, arn)[instance][0] == "initial"
    clock.advance(300)
    assert target_states(aws, arn) == {instance: ("unhealthy", "Target.FailedHealthChecks")}


def test_deregistered_target_drains_for_the_deregistration_delay_then_is_unused(aws: EmbeddedAws, network: Network,
                                                                                clock: ManualClock) -> None:
    arn = create_target_group(network, "web-tg", deregistration_delay=30)
    created = create_group(network, GroupSpec("web", desired=1, max_size=2, target_group_arns=(arn,)))
    instance = created["Instances"][0]["InstanceId"]
    elbv2 = aws.client("elbv2")
    elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": instance}])
    assert target_states(aws, arn) == {instance: ("draining", "Target.DeregistrationInProgress")}
    clock.advance(30)
    assert target_states(aws, arn) == {}
    asked = elbv2.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": instance}])["TargetHealthDescriptions"]
    assert asked[0]["TargetHealth"]["State"] == "unused"
    assert asked[0]["TargetHealth"]["Reason"] == "Target.NotRegistered"


def test_classic_elb_instance_in_service_after_interval_times_healthy_threshold(aws: EmbeddedAws, network: Network,
                                                                                clock: ManualClock) -> None:
    name = create_classic_load_balancer(network, "web-clb", interval=6, healthy_threshold=2)
    created = create_group(network, GroupSpec("web", desired=1, max_size=2, load_balancer_names=(name,)))
    instance = created["Instances"][0]["InstanceId"]
    assert clb_states(aws, name) == {instance: ("OutOfService", "Instance registration is still in progress.")}
    clock.advance(6)
    assert clb_states(aws, name)[instance] == (
        "OutOfService",
        "Instance has not passed the configured HealthyThreshold number of health checks consecutively.",
    )
    clock.advance(6)
    assert clb_states(aws, name) == {instance: ("InService", "N/A")}


def test_termination_through_group_drains_then_terminates(aws: EmbeddedAws, network: Network,
                                                          clock: ManualClock) -> None:
    arn = create_target_group(network, "web-tg", deregistration_delay=30)
    clb = create_classic_load_balancer(network, "web-clb", draining_seconds=45)
    created = create_group(network, GroupSpec("web", desired=2, max_size=3, target_group_arns=(arn,),
                                              load_balancer_names=(clb,)))
    leaving, staying = (i["InstanceId"] for i in created["Instances"])
    aws.client("autoscaling").terminate_instance_in_auto_scaling_group(InstanceId=leaving,
                                                                       ShouldDecrementDesiredCapacity=True)
    assert group(aws, "web")["DesiredCapacity"] == 1
    assert lifecycle(aws, "web") == {leaving: "Terminating", staying: "InService"}
    assert target_states(aws, arn)[leaving][0] == "draining"
    assert clb_states(aws, clb)[leaving] == ("OutOfService", "Instance deregistration currently in progress.")
    clock.advance(44)  # the longest drain of the group's load balancers: the classic ELB's 45 s
    assert lifecycle(aws, "web")[leaving] == "Terminating"
    clock.advance(1)
    assert lifecycle(aws, "web") == {staying: "InService"}
    state = aws.client("ec2").describe_instances(InstanceIds=[leaving])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "terminated"


def test_termination_hook_holds_the_instance_in_terminating_wait_until_completed(aws: EmbeddedAws,
                                                                                 network: Network,
                                                                                 clock: ManualClock) -> None:
    created = create_group(network, GroupSpec("web", desired=2, max_size=3))
    autoscaling = aws.client("autoscaling")
    autoscaling.put_lifecycle_hook(LifecycleHookName="drain-logs", AutoScalingGroupName="web",
                                   LifecycleTransition=TERMINATING, HeartbeatTimeout=600)
    leaving = created["Instances"][0]["InstanceId"]
    autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=leaving, ShouldDecrementDesiredCapacity=True)
    assert lifecycle(aws, "web")[leaving] == "Terminating:Wait"
    clock.advance(599)
    assert lifecycle(aws, "web")[leaving] == "Terminating:Wait"
    autoscaling.complete_lifecycle_action(AutoScalingGroupName="web", LifecycleHookName="drain-logs",
                                          LifecycleActionResult="CONTINUE", InstanceId=leaving)
    assert leaving not in lifecycle(aws, "web")


def test_launch_hook_holds_a_launched_instance_in_pending_wait_unregistered(aws: EmbeddedAws, network: Network,
                                                                           clock: ManualClock) -> None:
    arn = create_target_group(network, "web-tg")
    create_group(network, GroupSpec("web", desired=0, max_size=2, target_group_arns=(arn,)))
    autoscaling = aws.client("autoscaling")
    autoscaling.put_lifecycle_hook(LifecycleHookName="bootstrap", AutoScalingGroupName="web",
                                   LifecycleTransition=LAUNCHING, HeartbeatTimeout=300)
    autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=1)
    (launched, state), = lifecycle(aws, "web").items()
    assert state == "Pending:Wait"
    assert target_states(aws, arn) == {}
    autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=1)  # pending counts toward desired
    assert len(lifecycle(aws, "web")) == 1
    token = aws.lifecycle.action_token(launched, "bootstrap")
    autoscaling.complete_lifecycle_action(AutoScalingGroupName="web", LifecycleHookName="bootstrap",
                                          LifecycleActionResult="CONTINUE", LifecycleActionToken=token)
    assert lifecycle(aws, "web") == {launched: "InService"}
    assert target_states(aws, arn) == {launched: ("initial", "Elb.RegistrationInProgress")}


def test_launch_hook_abandon_terminates_and_the_group_launches_another(aws: EmbeddedAws, network: Network,
                                                                       clock: ManualClock) -> None:
    create_group(network, GroupSpec("web", desired=0, max_size=2))
    autoscaling = aws.client("autoscaling")
    autoscaling.put_lifecycle_hook(LifecycleHookName="bootstrap", AutoScalingGroupName="web",
                                   LifecycleTransition=LAUNCHING, HeartbeatTimeout=60)  # DefaultResult ABANDON
    autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=1)
    (first, _), = lifecycle(aws, "web").items()
    clock.advance(60)
    (second, state), = lifecycle(aws, "web").items()
    assert second != first and state == "Pending:Wait"


def test_launch_hook_timeout_takes_the_default_result(aws: EmbeddedAws, network: Network, clock: ManualClock) -> None:
    create_group(network, GroupSpec("web", desired=0, max_size=2))
    autoscaling = aws.client("autoscaling")
    autoscaling.put_lifecycle_hook(LifecycleHookName="bootstrap", AutoScalingGroupName="web",
                                   LifecycleTransition=LAUNCHING, HeartbeatTimeout=60, DefaultResult="CONTINUE")
    autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=1)
    (launched, _), = lifecycle(aws, "web").items()
    clock.advance(30)
    autoscaling.record_lifecycle_action_heartbeat(AutoScalingGroupName="web", LifecycleHookName="bootstrap",
                                                  InstanceId=launched)
    clock.advance(59)
    assert lifecycle(aws, "web") == {launched: "Pending:Wait"}
    clock.advance(1)
    assert lifecycle(aws, "web") == {launched: "InService"}


def test_attach_instances_skips_launch_hooks(aws: EmbeddedAws, network: Network) -> None:
    created = create_group(network, GroupSpec("web", desired=1, max_size=3))
    autoscaling, ec2 = aws.client("autoscaling"), aws.client("ec2")
    autoscaling.put_lifecycle_hook(LifecycleHookName="bootstrap", AutoScalingGroupName="web",
                                   LifecycleTransition=LAUNCHING, HeartbeatTimeout=300)
    subnet = created["VPCZoneIdentifier"].split(",")[0]
    extra = ec2.run_instances(ImageId=IMAGE_ID, InstanceType="m5.large", MinCount=1, MaxCount=1,
                              SubnetId=subnet)["Instances"][0]["InstanceId"]
    autoscaling.attach_instances(AutoScalingGroupName="web", InstanceIds=[extra])
    assert lifecycle(aws, "web")[extra] == "InService"


def test_complete_lifecycle_action_without_a_waiting_instance_is_refused(aws: EmbeddedAws, network: Network) -> None:
    created = create_group(network, GroupSpec("web", desired=1, max_size=2))
    instance = created["Instances"][0]["InstanceId"]
    with pytest.raises(ClientError) as refused:
        aws.client("autoscaling").complete_lifecycle_action(
            AutoScalingGroupName="web", LifecycleHookName="bootstrap", LifecycleActionResult="CONTINUE",
            InstanceId=instance)
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert refused.value.response["Error"]["Message"] == f"No active Lifecycle Action found with instance ID {instance}"


def test_put_lifecycle_hook_refuses_a_heartbeat_timeout_outside_30_to_7200(aws: EmbeddedAws, network: Network) -> None:
    create_group(network, GroupSpec("web", desired=0, max_size=2))
    with pytest.raises(ClientError) as refused:
        aws.client("autoscaling").put_lifecycle_hook(LifecycleHookName="bootstrap", AutoScalingGroupName="web",
                                                     LifecycleTransition=LAUNCHING, HeartbeatTimeout=20)
    assert refused.value.response["Error"]["Code"] == "ValidationError"


def test_mixed_instances_members_report_their_own_override_template_and_weight(aws: EmbeddedAws,
                                                                               network: Network) -> None:
    ec2, autoscaling = aws.client("ec2"), aws.client("autoscaling")
    x86 = ec2.create_launch_template(LaunchTemplateName="api-x86", LaunchTemplateData={
        "ImageId": IMAGE_ID, "InstanceType": "m5.large"})["LaunchTemplate"]
    arm_image = ec2.register_image(Name="api-arm64", Architecture="arm64", RootDeviceName="/dev/xvda")["ImageId"]
    arm = ec2.create_launch_template(LaunchTemplateName="api-arm64", LaunchTemplateData={
        "ImageId": arm_image, "InstanceType": "m6g.large"})["LaunchTemplate"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="api", MinSize=0, MaxSize=4, DesiredCapacity=2,
        VPCZoneIdentifier=network.subnets["a"],
        MixedInstancesPolicy={"LaunchTemplate": {
            "LaunchTemplateSpecification": {"LaunchTemplateId": x86["LaunchTemplateId"], "Version": "$Latest"},
            "Overrides": [{"InstanceType": "m5.large"},
                          {"InstanceType": "m6g.large", "LaunchTemplateSpecification": {
                              "LaunchTemplateId": arm["LaunchTemplateId"], "Version": "1"}}]}},
    )
    members = {i["InstanceType"]: i for i in group(aws, "api")["Instances"]}
    assert set(members) == {"m5.large", "m6g.large"}
    assert members["m6g.large"]["LaunchTemplate"]["LaunchTemplateName"] == "api-arm64"
    assert members["m5.large"]["LaunchTemplate"]["LaunchTemplateName"] == "api-x86"
    arm_instance = ec2.describe_instances(InstanceIds=[members["m6g.large"]["InstanceId"]])
    assert arm_instance["Reservations"][0]["Instances"][0]["ImageId"] == arm_image


def test_attach_instances_raises_desired_by_the_number_attached_while_a_member_drains(
        aws: EmbeddedAws, network: Network) -> None:
    arn = create_target_group(network, "web-tg", deregistration_delay=30)
    created = create_group(network, GroupSpec("web", desired=2, max_size=3, target_group_arns=(arn,)))
    autoscaling, ec2 = aws.client("autoscaling"), aws.client("ec2")
    leaving = created["Instances"][0]["InstanceId"]
    autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=leaving, ShouldDecrementDesiredCapacity=True)
    subnet = created["VPCZoneIdentifier"].split(",")[0]
    extra = ec2.run_instances(ImageId=IMAGE_ID, InstanceType="m5.large", MinCount=1, MaxCount=1,
                              SubnetId=subnet)["Instances"][0]["InstanceId"]
    autoscaling.attach_instances(AutoScalingGroupName="web", InstanceIds=[extra])  # 1 + 1 = 2, not 3 + 1
    assert group(aws, "web")["DesiredCapacity"] == 2
    assert lifecycle(aws, "web")[leaving] == "Terminating"
    more = ec2.run_instances(ImageId=IMAGE_ID, InstanceType="m5.large", MinCount=2, MaxCount=2,
                             SubnetId=subnet)["Instances"]
    with pytest.raises(ClientError) as refused:  # 2 + 2 > MaxSize 3
        autoscaling.attach_instances(AutoScalingGroupName="web", InstanceIds=[i["InstanceId"] for i in more])
    assert refused.value.response["Error"]["Code"] == "ValidationError"
