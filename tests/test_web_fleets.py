"""Web fleets end to end on the embedded AWS: swaps behind load balancers, launch and termination hooks,
mixed-instances groups, Capacity Rebalancing, and the events every swap publishes.

The load balancers' clock is a ManualClock that moves STEP AWS seconds after every task invocation, so "healthy
after interval x threshold" takes the same number of steps on any machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asg_optimizer.local import seam
from asg_optimizer.local.clock import ManualClock
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import (
    GroupSpec,
    Network,
    attach_spot,
    create_group,
    create_network,
    create_target_group,
)
from asg_optimizer.local.invariants import InvariantChecker
from tasks.core.swap_events import ON_DEMAND_RETIRED, SOURCE, SPOT_ATTACHED, SWAP_FAILED
from tests.cli_helpers import cli_json
from tests.conftest import FAST, MANUAL_WAIT_SCALE
from tests.workflow_helpers import cause, members, refusal, states_entered

STEP = 2.0  # AWS seconds per task invocation
WEB = {"lb_poll_seconds": 2, "lb_max_polls": 30, "group_poll_seconds": 2}
PINNED = {"AsgOptimiser:AllowedTypes": "m5a.large"}  # one candidate type, so a test can make it never healthy
LAUNCHING, TERMINATING = "autoscaling:EC2_INSTANCE_LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATING"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def web(clock: ManualClock) -> Iterator[EmbeddedAws]:
    def tick(*_: Any) -> None:
        clock.advance(STEP)

    with EmbeddedAws(boot_delay_seconds=0, retry_scale=0.05, wait_scale=MANUAL_WAIT_SCALE, clock=clock) as embedded:
        seam.observers.append(tick)
        try:
            yield embedded
        finally:
            seam.observers.remove(tick)


@pytest.fixture
def network(web: EmbeddedAws) -> Network:
    return create_network()


def web_group(web: EmbeddedAws, network: Network, clock: ManualClock, *, name: str = "web", desired: int = 2,
              interval: int = 5, healthy_threshold: int = 3, delay: int = 30, **tags: str) -> tuple[dict, str]:
    """A group behind one target group, its members already healthy."""
    arn = create_target_group(network, f"{name}-tg", interval=interval, healthy_threshold=healthy_threshold,
                              deregistration_delay=delay)
    raw = create_group(network, GroupSpec(name, desired=desired, max_size=desired + 2, extra_tags=tags,
                                          target_group_arns=(arn,)))
    clock.advance(interval * healthy_threshold)
    return raw, arn


def target_states(web: EmbeddedAws, arn: str) -> dict[str, str]:
    found = web.client("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in found}


def event_queue(web: EmbeddedAws) -> str:
    """An SQS queue that receives every event with our source on the default bus."""
    sqs, events = web.client("sqs"), web.client("events")
    url = sqs.create_queue(QueueName="swap-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="swap-events", EventPattern=json.dumps({"source": [SOURCE]}))
    events.put_targets(Rule="swap-events", Targets=[{"Id": "queue", "Arn": arn}])
    return str(url)


def received(web: EmbeddedAws, url: str) -> list[dict[str, Any]]:
    sqs, found = web.client("sqs"), []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        found += [json.loads(m["Body"]) for m in batch]


class HealthLog:
    """Target health of the swap's two instances after every task invocation."""

    def __init__(self, web: EmbeddedAws, arn: str, on_demand: str) -> None:
        self.web, self.arn, self.on_demand = web, arn, on_demand
        self.rows: list[tuple[str, str | None, str]] = []  # (function, spot state, on-demand state)

    def __call__(self, function: str, event: dict[str, Any], result: dict[str, Any], errored: bool) -> None:
        states = target_states(self.web, self.arn)
        spots = [i for i in states if i not in self.original]
        self.rows.append((function, states[spots[0]] if spots else None, states.get(self.on_demand, "gone")))

    def __enter__(self) -> HealthLog:
        self.original = set(target_states(self.web, self.arn))
        seam.observers.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        seam.observers.remove(self)


def test_swap_behind_a_target_group_retires_the_on_demand_only_once_the_spot_is_healthy(
        web: EmbeddedAws, network: Network, clock: ManualClock) -> None:
    raw, arn = web_group(web, network, clock, interval=5, healthy_threshold=3)  # 15 s of checks: 8 steps
    on_demand = raw["Instances"][0]["InstanceId"]
    queue = event_queue(web)
    with InvariantChecker(["web"]) as check, HealthLog(web, arn, on_demand) as log:
        execution = web.start_swap("web", on_demand, timing={**FAST, **WEB})
        described = web.wait(execution)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert check.finish() == []
    path = states_entered(web, execution)
    assert path.count("RetireOnDemand") >= 3, "RetireOnDemand must wait out the health checks"
    first_draining = next(i for i, (_, _, od) in enumerate(log.rows) if od == "draining")
    assert log.rows[first_draining - 1][1] == "healthy", "the on-demand left before the spot was healthy"
    assert all(od == "healthy" for _, _, od in log.rows[:first_draining]), "on-demand disturbed before retiring"
    assert check.lowest_serving("web") == 2
    spot = json.loads(described["output"])["spot"]["spot_instance_id"]
    clock.advance(30)  # the deregistration delay: the on-demand finishes draining and leaves
    assert members(web, "web") == {raw["Instances"][1]["InstanceId"]: "InService", spot: "InService"}
    kinds = [(e["detail-type"], e["detail"]["spot_instance_id"]) for e in received(web, queue)]
    assert kinds == [(SPOT_ATTACHED, spot), (ON_DEMAND_RETIRED, spot)]


def test_spot_never_healthy_is_cleaned_up_and_the_on_demand_keeps_serving(
        web: EmbeddedAws, network: Network, clock: ManualClock) -> None:
    web.load_balancers.never_healthy.add("m5a.large")
    raw, arn = web_group(web, network, clock, **PINNED)
    on_demand = raw["Instances"][0]["InstanceId"]
    queue = event_queue(web)
    with InvariantChecker(["web"]) as check:
        execution = web.start_swap("web", on_demand, timing={**FAST, **WEB, "lb_max_polls": 6})
        described = web.wait(execution)
    assert described["status"] == "FAILED"
    assert described["error"] == "SpotNotHealthy"
    assert "spot never healthy behind the load balancers after 6 polls" in cause(described)
    assert "is unhealthy in target group web-tg" in cause(described)
    assert states_entered(web, execution)[-3:] == ["Cleanup", "RestoreAfterFailure", "SwapFailed"]
    assert check.finish() == []
    assert target_states(web, arn)[on_demand] == "healthy"
    spot = next(i for i, s in members(web, "web").items() if i not in {m["InstanceId"] for m in raw["Instances"]})
    assert members(web, "web")[spot] == "Terminating"  # out through the group: deregistered, draining
    assert target_states(web, arn)[spot] == "draining"
    assert web.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]["DesiredCapacity"] == 2
    failed = [e for e in received(web, queue) if e["detail-type"] == SWAP_FAILED]
    assert [e["detail"]["error"] for e in failed] == ["SpotNotHealthy"]


def test_launch_hook_refuses_the_swap_naming_the_hook(web: EmbeddedAws, network: Network,
                                                      clock: ManualClock) -> None:
    raw, _ = web_group(web, network, clock)
    web.client("autoscaling").put_lifecycle_hook(LifecycleHookName="bootstrap", AutoScalingGroupName="web",
                                                 LifecycleTransition=LAUNCHING, HeartbeatTimeout=300)
    execution = web.start_swap("web", raw["Instances"][0]["InstanceId"], timing={**FAST, **WEB})
    described = web.wait(execution)
    assert refusal(described) == ("LaunchHookInTheWay", "ASG web has launch lifecycle hook 'bootstrap', which "
                                  "attached spots skip; tag AsgOptimiser:LaunchHooks=bypass to swap anyway")
    assert "LaunchSpot" not in states_entered(web, execution)


def test_launch_hook_bypass_swaps_and_publishes_the_events(web: EmbeddedAws, network: Network,
                                                           clock: ManualClock) -> None:
    raw, _ = web_group(web, network, clock, **{"AsgOptimiser:LaunchHooks": "bypass"})
    web.client("autoscaling").put_lifecycle_hook(LifecycleHookName="bootstrap", AutoScalingGroupName="web",
                                                 LifecycleTransition=LAUNCHING, HeartbeatTimeout=300)
    queue = event_queue(web)
    on_demand = raw["Instances"][0]["InstanceId"]
    execution = web.start_swap("web", on_demand, timing={**FAST, **WEB})
    described = web.wait(execution)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    spot = json.loads(described["output"])["spot"]["spot_instance_id"]
    assert members(web, "web")[spot] == "InService"  # attached: the launch hook did not hold it
    events = received(web, queue)
    assert [e["detail-type"] for e in events] == [SPOT_ATTACHED, ON_DEMAND_RETIRED]
    attached = events[0]["detail"]
    assert attached["asg_name"] == "web" and attached["on_demand_instance_id"] == on_demand
    assert attached["spot_instance_id"] == spot and attached["execution_name"] == described["name"]
    assert attached["launch_template"]["name"] == "web-lt" and attached["launch_hooks_skipped"] is True
    assert attached["availability_zone"] == raw["Instances"][0]["AvailabilityZone"]


def scan(web: EmbeddedAws, payload: dict[str, Any]) -> dict[str, Any]:
    answer = web.client("lambda").invoke(FunctionName=web.deployment.function_arns["scanner"],
                                         Payload=json.dumps(payload))
    return dict(json.loads(answer["Payload"].read()))


def test_scanner_skips_a_group_validate_refused_for_its_launch_hook_until_the_cooldown_ends(
        web: EmbeddedAws, network: Network, clock: ManualClock) -> None:
    """The scanner reads no lifecycle hooks (one call per picked group would grow with the fleet): Validate's
    refusal cools the group in the coordination table, the scanner skips it naming the hook, and once the cooldown
    ends one swap asks again (and is refused again while the hook is there)."""
    web_group(web, network, clock)
    web.client("autoscaling").put_lifecycle_hook(LifecycleHookName="bootstrap", AutoScalingGroupName="web",
                                                 LifecycleTransition=LAUNCHING, HeartbeatTimeout=300)
    hook = ("ASG web has launch lifecycle hook 'bootstrap', which attached spots skip; "
            "tag AsgOptimiser:LaunchHooks=bypass to swap anyway")
    timing = {**FAST, **WEB}
    first = scan(web, {"timing": timing})
    assert len(first["started"]) == 1
    arn = web.deployment.replace_arn.replace(":stateMachine:", ":execution:") + ":" + first["started"][0]
    assert refusal(web.wait(arn)) == ("LaunchHookInTheWay", hook)

    skipped = scan(web, {"timing": timing})
    assert skipped["started"] == [] and [p for p in skipped["plan"] if p["action"] == "replace"] == []
    [why] = [s["why"] for s in skipped["skipped_groups"] if s["asg_name"] == "web"]
    assert why.startswith(hook + " (a swap was refused for it; one swap tries again after ")
    until = datetime.strptime(why.rsplit(" ", 1)[1].rstrip(")"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(minutes=29) < until - datetime.now(UTC) <= timedelta(minutes=30)

    later = scan(web, {"timing": timing, "now": (until + timedelta(seconds=1)).isoformat()})
    assert later["skipped_groups"] == [] and len(later["started"]) == 1  # the cooldown is over: one swap asks
    again = web.deployment.replace_arn.replace(":stateMachine:", ":execution:") + ":" + later["started"][0]
    assert refusal(web.wait(again)) == ("LaunchHookInTheWay", hook)
    assert [s["asg_name"] for s in scan(web, {"dry_run": True})["skipped_groups"]] == ["web"]  # cooling again


def test_plan_names_a_launch_hook_before_any_swap_was_refused(web: EmbeddedAws, network: Network,
                                                               clock: ManualClock) -> None:
    """`plan` reads the hooks of the groups it would swap in itself (the scanner reads none), so an operator sees
    the hook before the first refusal."""
    web_group(web, network, clock)
    web.client("autoscaling").put_lifecycle_hook(LifecycleHookName="bootstrap", AutoScalingGroupName="web",
                                                 LifecycleTransition=LAUNCHING, HeartbeatTimeout=300)
    data = cli_json("plan")
    assert data["plan"] == [] and data["started"] == []
    assert data["skipped_groups"] == [{"asg_name": "web", "why": (
        "ASG web has launch lifecycle hook 'bootstrap', which attached spots skip; "
        "tag AsgOptimiser:LaunchHooks=bypass to swap anyway")}]


def test_termination_hook_holds_the_on_demand_and_the_swap_still_ends_swapped(web: EmbeddedAws,
                                                                              network: Network,
                                                                              clock: ManualClock) -> None:
    raw, _ = web_group(web, network, clock, delay=4)
    autoscaling = web.client("autoscaling")
    autoscaling.put_lifecycle_hook(LifecycleHookName="ship-logs", AutoScalingGroupName="web",
                                   LifecycleTransition=TERMINATING, HeartbeatTimeout=3600)
    on_demand = raw["Instances"][0]["InstanceId"]
    with InvariantChecker(["web"]) as check:
        execution = web.start_swap("web", on_demand, timing={**FAST, **WEB})
        described = web.wait(execution)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert check.finish() == []
    clock.advance(4)  # drained
    assert members(web, "web")[on_demand] == "Terminating:Wait"
    autoscaling.complete_lifecycle_action(AutoScalingGroupName="web", LifecycleHookName="ship-logs",
                                          LifecycleActionResult="CONTINUE", InstanceId=on_demand)
    assert on_demand not in members(web, "web")
    state = web.client("ec2").describe_instances(InstanceIds=[on_demand])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "terminated"


def mixed_group(web: EmbeddedAws, network: Network, *, weights: tuple[str, str] | None = None) -> dict[str, Any]:
    """`api`: an x86 default template and an arm64 override with a template of its own."""
    ec2, autoscaling = web.client("ec2"), web.client("autoscaling")
    x86 = ec2.create_launch_template(LaunchTemplateName="api-x86", LaunchTemplateData={
        "ImageId": "ami-0a1b2c3d4e5f60718", "InstanceType": "m5.large"})["LaunchTemplate"]
    arm_image = ec2.register_image(Name="api-arm64", Architecture="arm64", RootDeviceName="/dev/xvda")["ImageId"]
    arm = ec2.create_launch_template(LaunchTemplateName="api-arm64", LaunchTemplateData={
        "ImageId": arm_image, "InstanceType": "m6g.large"})["LaunchTemplate"]
    overrides: list[dict[str, Any]] = [
        {"InstanceType": "m5.large"},
        {"InstanceType": "m6g.large", "LaunchTemplateSpecification": {"LaunchTemplateId": arm["LaunchTemplateId"],
                                                                      "Version": "1"}}]
    if weights:
        for override, weight in zip(overrides, weights, strict=True):
            override["WeightedCapacity"] = weight
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="api", MinSize=0, MaxSize=4, DesiredCapacity=2, VPCZoneIdentifier=network.subnets["a"],
        HealthCheckGracePeriod=0,
        MixedInstancesPolicy={"LaunchTemplate": {"LaunchTemplateSpecification": {
            "LaunchTemplateId": x86["LaunchTemplateId"], "Version": "$Latest"}, "Overrides": overrides}},
        Tags=[{"ResourceId": "api", "ResourceType": "auto-scaling-group", "Key": "AsgOptimiser", "Value": "true",
               "PropagateAtLaunch": False}],
    )
    found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["api"])["AutoScalingGroups"][0]
    return {"group": found, "arm_image": arm_image, "arm_template": arm["LaunchTemplateId"]}


def test_mixed_instances_arm64_override_is_replaced_by_an_arm64_spot_from_its_own_template(
        web: EmbeddedAws, network: Network) -> None:
    made = mixed_group(web, network)
    arm = next(i for i in made["group"]["Instances"] if i["InstanceType"] == "m6g.large")
    execution = web.start_swap("api", arm["InstanceId"], timing={**FAST, **WEB})
    described = web.wait(execution)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    output = json.loads(described["output"])
    assert output["launch_template_id"] == made["arm_template"]
    assert output["override_types"] == ["m6g.large"]
    spot = web.client("ec2").describe_instances(InstanceIds=[output["spot"]["spot_instance_id"]])
    launched = spot["Reservations"][0]["Instances"][0]
    assert launched["ImageId"] == made["arm_image"] and launched["InstanceType"] == "m6g.large"
    assert launched["InstanceLifecycle"] == "spot"


def test_weighted_mixed_instances_group_is_refused_with_the_reason(web: EmbeddedAws, network: Network) -> None:
    made = mixed_group(web, network, weights=("2", "4"))
    execution = web.start_swap("api", made["group"]["Instances"][0]["InstanceId"], timing={**FAST, **WEB})
    described = web.wait(execution)
    assert refusal(described) == ("WeightedGroup", "ASG api has weighted overrides (m5.large=2, m6g.large=4): "
                                  "weighted groups are not swapped, since a spot of another weight would change its "
                                  "capacity")


@pytest.fixture
def interruption_web(request: pytest.FixtureRequest) -> Iterator[tuple[EmbeddedAws, ManualClock, Network]]:
    """A 24 s notice (polls every 2 s) and 10 AWS seconds per task invocation: a replacement's health checks
    (5 s x 2) pass within two ReleaseSpot polls, well inside the notice."""
    clock = ManualClock()

    def tick(*_: Any) -> None:
        clock.advance(10)

    env = {"SPOT_NOTICE_SECONDS": "24", "SWAP_TIMING": json.dumps(FAST)}
    with EmbeddedAws(boot_delay_seconds=0, retry_scale=0.05, wait_scale=MANUAL_WAIT_SCALE, clock=clock,
                     environment=env) as embedded:
        seam.observers.append(tick)
        try:
            yield embedded, clock, create_network()
        finally:
            seam.observers.remove(tick)


def interruption_of(web: EmbeddedAws, spot: str) -> tuple[dict[str, Any], dict[str, Any], float]:
    from asg_optimizer.local.events import interrupt
    from stack.description import INTERRUPTION

    delivery = interrupt(web, spot)
    name = delivery.results["spot-interruption"]["execution_name"]
    arn = web.deployment.state_machine_arns[INTERRUPTION].replace(":stateMachine:", ":execution:") + f":{name}"
    described = web.wait(arn, timeout=60)
    history = web.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    raised = next(json.loads(e["stateExitedEventDetails"]["output"]) for e in history
                  if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == "RaiseCapacity")
    return described, raised, delivery.emitted_epoch


def test_interruption_in_a_web_group_with_a_30_s_delay_waits_for_a_healthy_replacement(
        interruption_web: tuple[EmbeddedAws, ManualClock, Network]) -> None:
    web, clock, network = interruption_web
    raw, arn = web_group(web, network, clock, desired=1, interval=5, healthy_threshold=2, delay=30)
    spot = attach_spot(network, raw)
    clock.advance(10)
    queue = event_queue(web)
    with InvariantChecker(["web"]) as check:
        described, raised, _ = interruption_of(web, spot)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert check.finish() == []
    assert raised["drain_seconds"] == 30
    handled = [e["detail"] for e in received(web, queue) if e["detail-type"] == "Interruption Handled"]
    assert len(handled) == 1 and handled[0]["interrupted_instance_id"] == spot
    assert handled[0]["why"] == "replacement healthy behind the load balancers (3/3)"
    assert handled[0]["released_at"] < handled[0]["deadline"]
    assert target_states(web, arn)[spot] == "draining"  # deregistered early enough to drain
    assert check.lowest_serving("web") == 2


@pytest.mark.long
def test_interruption_in_a_web_group_with_a_300_s_delay_releases_at_the_capped_deadline(
        interruption_web: tuple[EmbeddedAws, ManualClock, Network]) -> None:
    web, clock, network = interruption_web
    raw, arn = web_group(web, network, clock, desired=1, interval=5, healthy_threshold=2, delay=300)
    spot = attach_spot(network, raw)
    clock.advance(10)
    # The team's launch hook holds the replacement in Pending:Wait: it cannot be healthy before the reclaim.
    web.client("autoscaling").put_lifecycle_hook(LifecycleHookName="bootstrap", AutoScalingGroupName="web",
                                                 LifecycleTransition=LAUNCHING, HeartbeatTimeout=3600)
    queue = event_queue(web)
    described, raised, emitted = interruption_of(web, spot)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert raised["drain_seconds"] == 300
    warned_at = float(raised["deadline"]) - 6  # 300 s > the 24 s notice: capped at a quarter of the notice
    assert abs(warned_at - emitted) < 2
    handled = [e["detail"] for e in received(web, queue) if e["detail-type"] == "Interruption Handled"]
    assert handled[0]["why"] == "deadline: 2 healthy behind the load balancers for desired 3"
    assert raised["deadline"] <= handled[0]["released_at"] < warned_at + 24  # before EC2 takes it
    assert target_states(web, arn)[spot] == "draining"
    assert spot not in web.ec2_model.reclaimed  # released before the reclaim


def test_capacity_rebalancing_group_gets_one_replacement_for_one_recommendation(
        web: EmbeddedAws, network: Network) -> None:
    from asg_optimizer.local.events import interrupt

    raw = create_group(network, GroupSpec("batch", desired=1, max_size=3, capacity_rebalance=True, zones=("a",)))
    spot = attach_spot(network, raw)
    before = set(members(web, "batch"))
    delivery = interrupt(web, spot, rebalance=True)
    assert delivery.results["spot-rebalance"] == {"ignored": (
        f"ASG batch has Capacity Rebalancing on: Auto Scaling replaces {spot} itself")}
    replacement = web.rebalanced[spot]
    assert replacement is not None and replacement not in before
    assert members(web, "batch") == {raw["Instances"][0]["InstanceId"]: "InService", replacement: "InService"}
    swaps = web.client("stepfunctions").list_executions(stateMachineArn=web.deployment.replace_arn)["executions"]
    assert swaps == []
