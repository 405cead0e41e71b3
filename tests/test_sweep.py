"""The sweep on the embedded AWS: orphaned spots terminated, live or attached ones left alone, held groups repaired."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import IMAGE_ID, Network
from stack.description import STACK
from tasks import sweep
from tasks.core.errors import InvalidInput
from tasks.core.naming import execution_name
from tasks.core.tags import EXECUTION, REPLACES
from tests.workflow_helpers import hold, holders, settings, state_of

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
    arn = aws.start_swap(asg_name, instance_id, timing={"start_delay_seconds": 3600})
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
        f"repaired crashed: gave back the holds of {dead_name('crashed')}; MaxSize back to 2; resumed AZRebalance"]
    assert settings(aws, "crashed") == original_crashed  # sizes, processes and tags as before the swap
    assert settings(aws, "busy") == held_busy != original_busy  # a live swap's hold is left alone
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == result["actions"]


def test_a_dead_hold_gives_back_its_slot_but_the_suspension_stays_until_the_last_hold_goes(
        aws: EmbeddedAws, make_group) -> None:
    group = make_group("shared", desired=2, max_size=2)
    running = live_execution(aws, "shared", group["Instances"][0]["InstanceId"])
    hold(aws, "shared", dead_name("shared"))  # full: a slot (MaxSize 3) and AZRebalance suspended
    hold(aws, "shared", running)  # room now: no slot, AZRebalance already suspended
    result = run_sweep(aws)
    assert result["actions"] == [f"repaired shared: gave back the holds of {dead_name('shared')}; MaxSize back to 2"]
    after = settings(aws, "shared")
    assert (after["max"], after["suspended"]) == (2, ["AZRebalance"])
    assert holders(aws, "shared") == [running]


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


def test_only_holds_and_claims_of_executions_no_longer_running_are_stale() -> None:
    from tasks.core.coordination import GroupRecord, Hold
    from tasks.core.sweep import stale_claims, stale_holders

    record = GroupRecord("g", holds={"dead": Hold(), "live": Hold()}, exists=True)
    assert stale_holders(record, {"live"}) == ["dead"]
    claims = [("i-1", "dead", 100.0), ("i-2", "live", 100.0), ("i-3", "not-listed-yet", 990.0)]
    assert stale_claims(claims, {"live"}, now=1000.0, min_age_seconds=60) == [("i-1", "dead")]


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
            mid_flight.append({"held": holders(aws, "web"), "sweep": run_sweep(aws, orphan_after_seconds=0)})

    seam.observers.append(sweep_after_raise)
    try:
        name = interrupt(aws, spot, reclaim=False).results["spot-interruption"]["execution_name"]
        arn = aws.deployment.state_machine_arns[INTERRUPTION].replace(":stateMachine:", ":execution:") + f":{name}"
        assert aws.wait(arn)["status"] == "SUCCEEDED"
    finally:
        seam.observers.remove(sweep_after_raise)
    assert mid_flight[0]["held"] == [name]
    assert mid_flight[0]["sweep"] == {"terminated": [], "repaired": [], "actions": [], "left": []}
    assert settings(aws, "web")["max"] == 2
