"""Races as real, concurrent Lambdas hit them: handlers of different executions interleave between their AWS calls
(each call atomic), and `hold_after_first_call` forces the worst interleaving every run, not by luck."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from asg_optimizer.local import interleaving
from asg_optimizer.local.clock import ManualClock
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.events import emit, reclaim_at_notice_end, warning_event
from asg_optimizer.local.group_builder import GroupSpec, Network, create_group, create_network
from asg_optimizer.local.invariants import InvariantChecker
from stack.description import INTERRUPTION
from tests.conftest import FAST, WAIT_SCALE
from tests.workflow_helpers import group, settings

NOTICE = 45  # ReleaseSpot polls every 3 s (0.3 s at WAIT_SCALE)


@pytest.fixture
def storm_aws() -> Iterator[EmbeddedAws]:
    """Notices on a clock nobody moves: every fallback releases its spot because the replacement is in service,
    never at a deadline or after a reclaim a loaded machine reached first (a hang fails on `wait`'s timeout)."""
    env = {"SPOT_NOTICE_SECONDS": str(NOTICE), "SWAP_TIMING": json.dumps(FAST)}
    with EmbeddedAws(boot_delay_seconds=0.3, retry_scale=0.05, wait_scale=WAIT_SCALE, environment=env,
                     notice_clock=ManualClock()) as embedded:
        yield embedded


def spot_group(aws: EmbeddedAws, network: Network, name: str, spots: int, *, max_size: int | None = None,
               **tags: str) -> list[str]:
    """A group whose `spots` members are all spot instances of ours (desired == MaxSize unless given)."""
    raw = create_group(network, GroupSpec(name, desired=0, max_size=max_size or spots, extra_tags=tags,
                                          zones=("a",)))
    fleet = aws.client("ec2").create_fleet(
        Type="instant", TargetCapacitySpecification={"TotalTargetCapacity": spots, "DefaultTargetCapacityType": "spot"},
        SpotOptions={"AllocationStrategy": "price-capacity-optimized"},
        LaunchTemplateConfigs=[{"LaunchTemplateSpecification": {
            "LaunchTemplateId": raw["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
            "Overrides": [{"InstanceType": "m5.large", "SubnetId": network.subnets["a"]}]}],
    )
    ids = [i for entry in fleet["Instances"] for i in entry["InstanceIds"]]
    assert len(ids) == spots
    aws.client("autoscaling").attach_instances(AutoScalingGroupName=name, InstanceIds=ids)
    return ids


def execution_arn(aws: EmbeddedAws, machine: str, name: str) -> str:
    return aws.deployment.state_machine_arns[machine].replace(":stateMachine:", ":execution:") + f":{name}"


def on_demand_launched(aws: EmbeddedAws, asg_name: str, before: set[str]) -> list[str]:
    reservations = aws.client("ec2").describe_instances(
        Filters=[{"Name": "tag:aws:autoscaling:groupName", "Values": [asg_name]}])["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"]
            if i["InstanceId"] not in before and i.get("InstanceLifecycle") != "spot"]


def test_a_hold_makes_every_handler_of_a_kind_read_before_any_goes_on(aws: EmbeddedAws) -> None:
    """The seam runs handlers concurrently: three Validates each make their first call, and only then does any of
    them make its second."""
    lam, order, lock = aws.client("lambda"), [], threading.Lock()

    def record(function: str, event: dict[str, Any], result: dict[str, Any], errored: bool) -> None:
        with lock:
            order.append(event["execution_name"])

    def validate(name: str) -> None:
        lam.invoke(FunctionName=aws.deployment.function_arns["validate"], Payload=json.dumps(
            {"input": {"asg_name": "ghost", "instance_id": "i-0123456789abcdef0"}, "execution_name": name,
             "state_machine_arn": "arn"}))

    from asg_optimizer.local import seam
    seam.observers.append(record)
    try:
        with interleaving.hold_after_first_call("validate", 3) as hold:
            threads = [threading.Thread(target=validate, args=(f"v{n}",)) for n in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
    finally:
        seam.observers.remove(record)
    assert hold.tripped and not hold.timed_out
    assert hold.arrived == ["DescribeAutoScalingGroups"] * 3  # the read each one decides from
    assert sorted(order) == ["v0", "v1", "v2"]


def test_operations_are_named_alike_for_query_and_json_protocols() -> None:
    """In-process, botocore sends X-Amz-Target as bytes: `after="UpdateItem"` must match DynamoDB's UpdateItem."""
    json_target = {"X-Amz-Target": b"DynamoDB_20120810.UpdateItem"}
    assert interleaving.operation_of(json_target, b"{}") == "UpdateItem"
    assert interleaving.operation_of({"X-Amz-Target": "AWSStepFunctions.StartExecution"}, b"{}") == "StartExecution"
    assert interleaving.operation_of({}, b"Action=AttachInstances&Version=2011-01-01") == "AttachInstances"


def test_a_hold_that_never_fills_times_out_instead_of_hanging(aws: EmbeddedAws) -> None:
    lam = aws.client("lambda")
    with interleaving.hold_after_first_call("validate", 2, timeout=0.2) as hold:
        lam.invoke(FunctionName=aws.deployment.function_arns["validate"], Payload=json.dumps(
            {"input": {"asg_name": "ghost", "instance_id": "i-0123456789abcdef0"}, "execution_name": "v",
             "state_machine_arn": "arn"}))
    assert hold.timed_out and not hold.tripped


def storm(aws: EmbeddedAws, spots: list[str]) -> tuple[list[str], list[float]]:
    """Every spot's two-minute warning at once; EC2 reclaims each at the end of its notice."""
    names, emitted = [], []
    for spot in spots:
        delivery = emit(aws, warning_event(aws, spot, "us-east-1a"))
        reclaim_at_notice_end(aws, spot, delivery)
        names.append(delivery.results["spot-interruption"]["execution_name"])
        emitted.append(delivery.emitted_epoch)
    return names, emitted



def test_storm_of_warnings_for_every_spot_keeps_the_group_exact(storm_aws: EmbeddedAws) -> None:
    aws, size = storm_aws, 10
    network = create_network()
    spots = spot_group(aws, network, "web", size)
    before = settings(aws, "web")
    with InvariantChecker(["web"]) as check, interleaving.hold_after_first_call("raise-capacity", size) as hold:
        names, emitted = storm(aws, spots)
        described = [aws.wait(execution_arn(aws, INTERRUPTION, name), timeout=90) for name in names]
    violations = check.finish()
    requested = [json.loads(d.get("output") or "{}").get("requested_at", 0.0) for d in described]
    print(f"storm of {size}: desired {before['desired']} -> {group(aws, 'web')['DesiredCapacity']}, lowest in "
          f"service {check.lowest_in_service('web')}, last replacement requested "
          f"{max(requested) - min(emitted):.2f}s after the first warning")

    assert hold.tripped
    assert [d["status"] for d in described] == ["SUCCEEDED"] * size, [d.get("cause") for d in described]
    assert settings(aws, "web") == before  # desired 10, MaxSize 10, nothing suspended, no hold tag left
    assert len(on_demand_launched(aws, "web", set(spots))) == size
    # Sampled after every step of every execution: never fewer in service than the 10 the user asked for.
    assert check.lowest_in_service("web") >= size, check.for_group("web")
    assert violations == []


def swap_path(aws: EmbeddedAws, arn: str) -> list[str]:
    from tests.workflow_helpers import states_entered

    return states_entered(aws, arn)


def test_four_parallel_swaps_on_a_full_group_each_get_their_slot(storm_aws: EmbeddedAws) -> None:
    aws = storm_aws
    network = create_network()
    raw = create_group(network, GroupSpec("full", desired=4, max_size=4, extra_tags={"AsgOptimiser:MaxParallel": "4"}))
    before = settings(aws, "full")
    with InvariantChecker(["full"]) as check, interleaving.hold_after_first_call("attach-spot", 4) as hold:
        arns = [aws.start_swap("full", i["InstanceId"], timing=FAST) for i in raw["Instances"]]
        described = [aws.wait(arn, timeout=90) for arn in arns]
    assert hold.tripped  # every AttachSpot read the full group before any made room
    assert [d["status"] for d in described] == ["SUCCEEDED"] * 4, [d.get("cause") for d in described]
    assert all(swap_path(aws, arn)[-2:] == ["RestoreGroup", "Swapped"] for arn in arns)
    assert settings(aws, "full") == before  # desired 4, MaxSize 4 again, nothing suspended, no tag of ours
    assert check.finish() == []


def test_a_person_raising_max_size_and_desired_during_a_held_swap_keeps_their_values(storm_aws: EmbeddedAws) -> None:
    aws = storm_aws
    network = create_network()
    raw = create_group(network, GroupSpec("web", desired=2, max_size=2))  # full: the swap holds a MaxSize slot
    autoscaling = aws.client("autoscaling")
    with interleaving.pause_after("attach-spot", "AttachInstances") as pause:
        arn = aws.start_swap("web", raw["Instances"][0]["InstanceId"], timing=FAST)
        pause.wait()  # the spot is attached: MaxSize 3 (ours), desired 3
        during = group(aws, "web")
        theirs = {"MaxSize": during["MaxSize"] + 2, "DesiredCapacity": during["DesiredCapacity"] + 2}
        autoscaling.update_auto_scaling_group(AutoScalingGroupName="web", **theirs)
        pause.resume()
        described = aws.wait(arn, timeout=60)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    after = group(aws, "web")
    # Their MaxSize stands; desired is theirs less the one our retire took back (the spot replaced the on-demand).
    assert (during["MaxSize"], during["DesiredCapacity"]) == (3, 3)
    assert (after["MaxSize"], after["DesiredCapacity"]) == (theirs["MaxSize"], theirs["DesiredCapacity"] - 1)


def test_a_group_with_48_tags_of_its_own_takes_6_parallel_swaps_and_a_storm_of_6(storm_aws: EmbeddedAws) -> None:
    aws = storm_aws
    network = create_network()
    own = {f"team:{n:02d}": "x" for n in range(44)} | {"AsgOptimiser:MaxParallel": "6"}  # + 3 of every group
    raw = create_group(network, GroupSpec("tagged", desired=6, max_size=12, extra_tags=own, zones=("a",)))
    on_demand = [i["InstanceId"] for i in raw["Instances"]]
    fleet = aws.client("ec2").create_fleet(
        Type="instant", TargetCapacitySpecification={"TotalTargetCapacity": 6, "DefaultTargetCapacityType": "spot"},
        SpotOptions={"AllocationStrategy": "price-capacity-optimized"},
        LaunchTemplateConfigs=[{"LaunchTemplateSpecification": {
            "LaunchTemplateId": raw["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
            "Overrides": [{"InstanceType": "c5.large", "SubnetId": network.subnets["a"]}]}],
    )
    spots = [i for entry in fleet["Instances"] for i in entry["InstanceIds"]]
    aws.client("autoscaling").attach_instances(AutoScalingGroupName="tagged", InstanceIds=spots)
    before = settings(aws, "tagged")
    assert len(before["tags"]) == 48 and before["desired"] == before["max"] == 12
    with InvariantChecker(["tagged"]) as check:
        swaps = [aws.start_swap("tagged", i, timing=FAST) for i in on_demand]
        names, _ = storm(aws, spots)
        described = [aws.wait(arn, timeout=120) for arn in swaps]
        described += [aws.wait(execution_arn(aws, INTERRUPTION, n), timeout=120) for n in names]
    assert [d["status"] for d in described] == ["SUCCEEDED"] * 12, [d.get("cause") for d in described]
    assert settings(aws, "tagged") == before  # 48 tags, desired 12, MaxSize 12, nothing suspended
    assert check.finish() == []


@pytest.fixture
def lagging_aws() -> Iterator[EmbeddedAws]:
    """ListExecutions eventually consistent: an execution stays out of the listing for an hour (30 s could pass
    on a loaded machine before the second start)."""
    with EmbeddedAws(boot_delay_seconds=0.5, list_executions_lag_seconds=3600) as embedded:
        yield embedded


def spots_launched(aws: EmbeddedAws, on_demand: str) -> list[str]:
    reservations = aws.client("ec2").describe_instances(
        Filters=[{"Name": "tag:AsgOptimiser:Replaces", "Values": [on_demand]}])["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"]]


def test_the_scanner_invoked_twice_for_one_scheduled_event_makes_one_swap(lagging_aws: EmbeddedAws) -> None:
    from asg_optimizer.local.scheduler import scheduled_event
    from stack.description import REPLACE, STACK

    aws = lagging_aws
    network = create_network()
    raw = create_group(network, GroupSpec("web", desired=1, max_size=2, extra_tags={"AsgOptimiser:GracePeriod": "0"}))
    event = {**scheduled_event(STACK.schedules[0], aws.region), "timing": FAST}
    lam, scanner = aws.client("lambda"), STACK.function("scanner").name()
    first = json.loads(lam.invoke(FunctionName=scanner, Payload=json.dumps(event))["Payload"].read())
    time.sleep(1.1)  # EventBridge redelivers a second later: the wall clock has moved on, the event's time has not
    second = json.loads(lam.invoke(FunctionName=scanner, Payload=json.dumps(event))["Payload"].read())
    names = {*first["started"], *second["started"]}
    assert len(names) == 1, (first, second)
    assert aws.wait(execution_arn(aws, REPLACE, names.pop()), timeout=60)["status"] == "SUCCEEDED"
    assert len(spots_launched(aws, raw["Instances"][0]["InstanceId"])) == 1


def test_two_manual_replaces_of_one_instance_at_once_make_one_swap(lagging_aws: EmbeddedAws) -> None:
    from tests.workflow_helpers import refusal

    aws = lagging_aws
    network = create_network()
    raw = create_group(network, GroupSpec("web", desired=1, max_size=2))
    on_demand = raw["Instances"][0]["InstanceId"]
    with interleaving.hold_after_first_call("validate", 2) as hold:
        arns = [aws.start_swap("web", on_demand, timing=FAST, name=f"web-{on_demand}-manual-{n}") for n in (1, 2)]
        described = [aws.wait(arn, timeout=60) for arn in arns]
    assert hold.tripped  # both Validates read the group before either claimed the instance
    assert [d["status"] for d in described] == ["SUCCEEDED"] * 2, [d.get("cause") for d in described]
    outcomes = [json.loads(d["output"]).get("outcome", "swapped") for d in described]  # Swapped: no outcome key
    assert sorted(outcomes) == ["refused", "swapped"], outcomes
    winner = described[outcomes.index("swapped")]["name"]
    assert refusal(described[outcomes.index("refused")]) == (
        "SwapInFlight", f"instance {on_demand} is already being replaced by execution {winner}")
    assert len(spots_launched(aws, on_demand)) == 1
