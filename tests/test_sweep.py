"""The sweep on the embedded AWS: orphaned spots terminated, live or attached ones left alone, held groups repaired."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.fleet import IMAGE_ID, Network
from stack.description import STACK
from tasks import sweep
from tasks.aws.groups import describe_group
from tasks.core.errors import InvalidInput
from tasks.core.holds import plan_prepare
from tasks.core.naming import execution_name
from tasks.core.tags import EXECUTION, HOLD_PREFIX, REPLACES
from tests.workflow_helpers import settings, state_of

LATER = timedelta(minutes=16)  # past the default 15-minute bound


def run_sweep(aws: EmbeddedAws, **event: Any) -> dict[str, Any]:
    env = aws.client("lambda").get_function_configuration(FunctionName=STACK.function("sweep").name())
    os.environ.update(env["Environment"]["Variables"])
    return sweep.handler(event, None)


def launch_spot(aws: EmbeddedAws, network: Network, execution: str, replaces: str = "i-0123456789abcdef0") -> str:
    """A spot as LaunchSpot makes it: tagged at creation with what it replaces and the execution that owns it."""
    return aws.client("ec2").run_instances(
        ImageId=IMAGE_ID, InstanceType="m5.large", MinCount=1, MaxCount=1, SubnetId=network.subnets["a"],
        InstanceMarketOptions={"MarketType": "spot"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [
            {"Key": REPLACES, "Value": replaces}, {"Key": EXECUTION, "Value": execution}]}],
    )["Instances"][0]["InstanceId"]


def live_execution(aws: EmbeddedAws, asg_name: str, instance_id: str) -> str:
    """A RUNNING execution (parked in its start delay) and its name."""
    arn = aws.start_swap(asg_name, instance_id, timing={"start_delay_seconds": 600})
    return arn.rsplit(":", 1)[1]


def dead_name(asg_name: str) -> str:
    return execution_name(asg_name, "i-00000000000000dead", datetime(2026, 1, 1, tzinfo=UTC))


def test_orphans_go_and_everything_a_swap_may_still_need_stays(aws: EmbeddedAws, network: Network, make_group) -> None:
    group = make_group("web", desired=1, max_size=3)
    on_demand = group["Instances"][0]["InstanceId"]
    orphan = launch_spot(aws, network, dead_name("web"))
    running = live_execution(aws, "web", on_demand)
    owned = launch_spot(aws, network, running, replaces=on_demand)
    attached = launch_spot(aws, network, dead_name("web") + "x")
    aws.client("autoscaling").attach_instances(AutoScalingGroupName="web", InstanceIds=[attached])
    now = datetime.now(UTC)

    young = run_sweep(aws, now=(now + timedelta(minutes=14)).isoformat())
    assert {k: v for k, v in young.items() if k != "left"} == {"terminated": [], "repaired": [], "actions": []}
    (left,) = young["left"]  # the young orphan is told of, not silently kept
    assert left.startswith(f"left {orphan}: spot for ") and "terminated once older than 900s" in left

    result = run_sweep(aws, now=(now + LATER).isoformat())
    assert result["terminated"] == [orphan]
    assert result["actions"][0].startswith(f"terminated {orphan}: spot for i-0123456789abcdef0 launched ")
    assert result["actions"][0].endswith(f"s ago by execution {dead_name('web')}, in no ASG, execution not running")
    assert state_of(aws, orphan) in ("shutting-down", "terminated")
    assert {i: state_of(aws, i) for i in (owned, attached, on_demand)} == dict.fromkeys((owned, attached, on_demand),
                                                                                        "running")


def test_a_shorter_bound_from_the_event(aws: EmbeddedAws, network: Network) -> None:
    orphan = launch_spot(aws, network, dead_name("web"))
    assert run_sweep(aws, orphan_after_seconds=0)["terminated"] == [orphan]


def hold(aws: EmbeddedAws, asg_name: str, execution: str) -> None:
    """What AttachSpot does before it attaches: record the hold and originals, raise MaxSize, suspend."""
    group = describe_group(asg_name)
    plan = plan_prepare(group, execution)
    autoscaling = aws.client("autoscaling")
    autoscaling.create_or_update_tags(Tags=[
        {"ResourceId": asg_name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v,
         "PropagateAtLaunch": False} for k, v in plan.tags.items()])
    if plan.new_max_size is not None:
        autoscaling.update_auto_scaling_group(AutoScalingGroupName=asg_name, MaxSize=plan.new_max_size)
    if plan.suspend:  # an empty list would suspend every process
        autoscaling.suspend_processes(AutoScalingGroupName=asg_name, ScalingProcesses=list(plan.suspend))


def test_a_group_left_held_by_a_crashed_execution_is_repaired(aws: EmbeddedAws, make_group, caplog) -> None:
    make_group("crashed", desired=2, max_size=2)
    live = make_group("busy", desired=2, max_size=2)
    original_crashed, original_busy = settings(aws, "crashed"), settings(aws, "busy")
    hold(aws, "crashed", dead_name("crashed"))
    running = live_execution(aws, "busy", live["Instances"][0]["InstanceId"])
    hold(aws, "busy", running)
    held_busy = settings(aws, "busy")
    assert settings(aws, "crashed")["max"] == 3 and settings(aws, "crashed")["suspended"] == ["AZRebalance"]

    caplog.clear()
    result = run_sweep(aws)
    assert result["repaired"] == ["crashed"]
    assert result["actions"] == [
        f"repaired crashed: released holds of {dead_name('crashed')}; MaxSize back to 2; resumed AZRebalance"]
    assert settings(aws, "crashed") == original_crashed  # sizes, processes and tags as before the swap
    assert settings(aws, "busy") == held_busy != original_busy  # a live swap's hold is left alone
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == result["actions"]


def test_a_live_hold_is_released_but_settings_stay_until_the_last_hold_goes(aws: EmbeddedAws, make_group) -> None:
    group = make_group("shared", desired=2, max_size=2)
    running = live_execution(aws, "shared", group["Instances"][0]["InstanceId"])
    hold(aws, "shared", dead_name("shared"))
    hold(aws, "shared", running)
    result = run_sweep(aws)
    assert result["actions"] == [f"repaired shared: released holds of {dead_name('shared')}"]
    after = settings(aws, "shared")
    assert (after["max"], after["suspended"]) == (3, ["AZRebalance"])
    assert [k for k, _ in after["tags"] if k.startswith(HOLD_PREFIX)] == [HOLD_PREFIX + running]


def test_sweep_through_the_deployed_function(aws: EmbeddedAws, network: Network, make_group) -> None:
    make_group("crashed", desired=1, max_size=1)
    hold(aws, "crashed", dead_name("crashed"))
    orphan = launch_spot(aws, network, dead_name("crashed"))
    response = aws.client("lambda").invoke(FunctionName=STACK.function("sweep").name(),
                                           Payload=json.dumps({"orphan_after_seconds": 0}))
    result = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, result
    assert (result["terminated"], result["repaired"], len(result["actions"])) == ([orphan], ["crashed"], 2)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"orphan_after_seconds": "15m"}, "orphan_after_seconds must be a whole number of seconds >= 0, got '15m'"),
        ({"orphan_after_seconds": -1}, "orphan_after_seconds must be a whole number of seconds >= 0, got -1"),
        ({"now": 5}, "now must be an ISO 8601 timestamp such as '2026-01-31T22:30:00Z', got 5"),
    ],
)
def test_bad_input_is_refused(aws: EmbeddedAws, event: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        run_sweep(aws, **event)
    assert str(raised.value) == message


def _group(*holds: str, originals: bool = True) -> Any:
    from tasks.core.model import Group
    from tasks.core.tags import ORIGINAL_MAX_SIZE, ORIGINAL_SUSPENDED

    tags = {HOLD_PREFIX + h: "held" for h in holds}
    if originals:
        tags |= {ORIGINAL_MAX_SIZE: "2", ORIGINAL_SUSPENDED: "-"}
    return Group("g", 2, 0, 3, tags)


@pytest.mark.parametrize(
    ("listed", "running", "fresh", "released"),
    [
        (_group("dead"), set(), _group("dead"), ["dead"]),
        (_group("dead"), set(), _group(originals=False), None),  # the workflow restored it meanwhile
        (_group("dead"), set(), _group("dead", "new"), ["dead"]),  # a swap started since: keep its hold
        (_group("live"), {"live"}, _group("live"), None),
        (_group(), set(), _group(), []),  # originals left with no hold: put them back
        (_group(), set(), _group("new"), None),  # ... unless a swap has held the group since
        (_group(originals=False), set(), _group(originals=False), None),
    ],
)
def test_only_holds_seen_before_the_listing_and_still_there_are_released(listed: Any, running: set[str], fresh: Any,
                                                                          released: list[str] | None) -> None:
    from tasks.core.sweep import stale_holds, still_stale

    stale = stale_holds(listed, running)
    assert (None if stale is None else still_stale(fresh, stale)) == released


def test_a_running_interruption_fallback_keeps_its_hold(aws: EmbeddedAws, make_group) -> None:
    """The sweep lists both workflows' RUNNING executions: a fallback mid-flight is not a crashed swap."""
    from asg_optimizer.local import seam
    from asg_optimizer.local.events import interrupt
    from stack.description import INTERRUPTION
    from tests.conftest import FAST

    raw = make_group("web", desired=2, max_size=2)  # full: the fallback raises MaxSize, so it holds the group
    swapped = aws.wait(aws.start_swap("web", raw["Instances"][0]["InstanceId"], timing=FAST))
    spot = json.loads(swapped["output"])["spot"]["spot_instance_id"]
    mid_flight: list[dict[str, Any]] = []

    def sweep_after_raise(function: str, event: dict[str, Any], result: dict[str, Any], errored: bool) -> None:
        if function.endswith("raise-capacity") and not mid_flight:
            held = [k for k, _ in settings(aws, "web")["tags"] if k.startswith(HOLD_PREFIX)]
            mid_flight.append({"held": held, "sweep": run_sweep(aws, orphan_after_seconds=0)})

    seam.observers.append(sweep_after_raise)
    try:
        name = interrupt(aws, spot, reclaim=False).results["spot-interruption"]["execution_name"]
        arn = aws.deployment.state_machine_arns[INTERRUPTION].replace(":stateMachine:", ":execution:") + f":{name}"
        assert aws.wait(arn)["status"] == "SUCCEEDED"
    finally:
        seam.observers.remove(sweep_after_raise)
    assert mid_flight[0]["held"] == [HOLD_PREFIX + name]
    assert mid_flight[0]["sweep"] == {"terminated": [], "repaired": [], "actions": [], "left": []}
    assert settings(aws, "web")["max"] == 2
