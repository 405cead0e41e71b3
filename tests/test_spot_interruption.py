"""Spot interruption and rebalance: replacement capacity InService before the spot is gone, in-service never below
desired after any step, pools cooling, an instance churned once per cooldown; the pure decisions behind them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.events import interrupt, spot_event
from asg_optimizer.local.group_builder import GroupSpec, attach_spot, create_group, create_network
from asg_optimizer.local.invariants import InvariantChecker
from stack.description import INTERRUPTION
from tasks.core.errors import InvalidInput
from tasks.core.interruption import parse_spot_event, raise_refusal, release_deadline, release_decision
from tasks.core.model import Group, Member
from tests.conftest import SPOT_NOTICE as NOTICE
from tests.workflow_helpers import cooling, group, members, settings, state_of, states_entered

EVENTS = Path(__file__).parent / "events"


def group_with_spot(aws: EmbeddedAws, name: str = "web", **tags: str) -> tuple[str, str]:
    """A full group (desired 2 = max 2) whose second member is a spot; returns (on-demand id, spot id)."""
    network = create_network()
    raw = create_group(network, GroupSpec(name, desired=1, max_size=2, extra_tags=tags, zones=("a",)))
    spot = attach_spot(network, raw)
    return raw["Instances"][0]["InstanceId"], spot


def execution_arn(aws: EmbeddedAws, machine: str, name: str) -> str:
    return aws.deployment.state_machine_arns[machine].replace(":stateMachine:", ":execution:") + f":{name}"



def test_interruption_gets_on_demand_capacity_in_before_the_spot_goes(market_aws: EmbeddedAws) -> None:
    aws = market_aws
    on_demand, spot = group_with_spot(aws)
    before = settings(aws, "web")
    with InvariantChecker(["web"]) as check:
        delivery = interrupt(aws, spot)
        name = delivery.results["spot-interruption"]["execution_name"]
        arn = execution_arn(aws, INTERRUPTION, name)
        described = aws.wait(arn, timeout=30)
    violations = check.finish()

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states_entered(aws, arn) == ["RaiseCapacity", "Raised", "ReleaseSpot", "Released", "Replaced"]
    output = json.loads(described["output"])
    assert output["raised_to"] == 3 and output["release"]["why"] == "replacement in service (3/3)"
    # The spot left through the group (ours), before EC2 reclaimed it at the end of the notice.
    assert spot not in aws.ec2_model.reclaimed
    assert state_of(aws, spot) in ("shutting-down", "terminated")
    after = members(aws, "web")
    assert spot not in after and on_demand in after and set(after.values()) == {"InService"} and len(after) == 2
    assert settings(aws, "web") == before  # desired 2, MaxSize 2 again, no hold tags, nothing suspended
    # Sampled after every step: never fewer in service than desired, nor than the 2 the user asked for.
    samples = check.for_group("web")
    assert len(samples) >= 5 and all(s.in_service >= max(s.desired, 2) for s in samples), samples
    assert violations == []
    assert cooling(aws) == {"pool#m5.large#us-east-1a": "interruption"}
    # Requested after the warning, before the release deadline (how fast is a figure: `make demo` prints it).
    assert delivery.emitted_epoch < output["requested_at"] < release_deadline(delivery.emitted_epoch, NOTICE)


def test_duplicate_warning_finds_the_running_execution(market_aws: EmbeddedAws) -> None:
    aws = market_aws
    _, spot = group_with_spot(aws)
    event = spot_event(spot, "us-east-1a", at=datetime.now(UTC))
    lam, fn = aws.client("lambda"), aws.deployment.function_arns["spot-interruption"]
    first = json.loads(lam.invoke(FunctionName=fn, Payload=json.dumps(event))["Payload"].read())
    second = json.loads(lam.invoke(FunctionName=fn, Payload=json.dumps(event))["Payload"].read())
    assert first["execution_name"] == second["execution_name"]  # same name, same input: Step Functions returns
    executions = aws.client("stepfunctions").list_executions(  # the first execution, it does not start another
        stateMachineArn=aws.deployment.state_machine_arns[INTERRUPTION])["executions"]
    assert [e["name"] for e in executions] == [first["execution_name"]]
    aws.wait(execution_arn(aws, INTERRUPTION, first["execution_name"]), timeout=30)
    assert group(aws, "web")["DesiredCapacity"] == 2 and len(members(aws, "web")) == 2


def test_warning_for_an_instance_outside_opted_in_groups_is_ignored(market_aws: EmbeddedAws) -> None:
    aws = market_aws
    network = create_network()
    raw = create_group(network, GroupSpec("legacy", desired=1, max_size=2, opted_in=False))
    instance = raw["Instances"][0]["InstanceId"]
    delivery = interrupt(aws, instance, reclaim=False)
    assert delivery.results == {"spot-interruption": {"ignored": "ASG legacy is not opted in"}}
    assert group(aws, "legacy")["DesiredCapacity"] == 1


def test_rebalance_replaces_the_spot_from_another_pool_once_per_cooldown(market_aws: EmbeddedAws) -> None:
    aws = market_aws
    _, spot = group_with_spot(aws)
    with InvariantChecker(["web"]) as check:
        delivery = interrupt(aws, spot, rebalance=True)
        result = delivery.results["spot-rebalance"]
        again = interrupt(aws, spot, rebalance=True).results["spot-rebalance"]  # a second one, spot still serving
        assert again == {"ignored": f"instance {spot} was already churned within the cooldown"}
        described = aws.wait(execution_arn(aws, "replace-instance", result["execution_name"]), timeout=60)
    assert check.finish() == []
    assert described["status"] == "SUCCEEDED", described.get("cause")
    new = json.loads(described["output"])["spot"]
    assert new["spot_instance_type"] != "m5.large"  # its pool was put on cooldown first
    assert json.loads(described["input"])["reason"] == "rebalance"
    assert state_of(aws, spot) in ("shutting-down", "terminated")
    assert new["spot_instance_id"] in members(aws, "web")
    assert cooling(aws) == {"pool#m5.large#us-east-1a": "rebalance", f"instance#{spot}": "rebalance"}


def test_rebalance_with_every_pool_cooling_leaves_the_spot_to_the_fallback(market_aws: EmbeddedAws) -> None:
    aws = market_aws
    _, spot = group_with_spot(aws, **{"AsgOptimiser:AllowedTypes": "m5.large"})
    result = interrupt(aws, spot, rebalance=True).results["spot-rebalance"]
    described = aws.wait(execution_arn(aws, "replace-instance", result["execution_name"]), timeout=60)
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["outcome"] == "no-capacity" and "1 cooling down" in output["why"]
    assert members(aws, "web")[spot] == "InService"


def test_sample_events_parse() -> None:
    warning = parse_spot_event(json.loads((EVENTS / "spot-interruption-warning.json").read_text()))
    assert (warning.instance_id, warning.time.isoformat()) == ("i-0b662ef9931388ba0", "2026-11-26T14:00:00+00:00")
    assert parse_spot_event(json.loads((EVENTS / "rebalance-recommendation.json").read_text())).detail_type == (
        "EC2 Instance Rebalance Recommendation")
    bad: dict[str, Any] = {**json.loads((EVENTS / "spot-interruption-warning.json").read_text()),
                           "detail": {"instance-id": "web-1"}}
    with pytest.raises(InvalidInput, match=r"detail\.instance-id must be an instance id, got 'web-1'"):
        parse_spot_event(bad)


SPOT = "i-0000000000000000a"


def full_group(desired: int = 2, max_size: int = 2, **tags: str) -> Group:
    members_ = (Member("i-0000000000000000b", "InService", instance_type="m5.large", availability_zone="us-east-1a"),
                Member(SPOT, "InService", instance_type="m5.large", availability_zone="us-east-1a"))
    return Group("web", desired, 0, max_size, tags={"AsgOptimiser": "true", **tags}, members=members_)


def test_raise_refuses_a_group_not_opted_in_or_a_spot_already_leaving() -> None:
    assert raise_refusal(full_group(), SPOT) is None
    assert raise_refusal(full_group(), "i-00000000000000ff") == "spot i-00000000000000ff is not a member in ASG web"
    assert raise_refusal(Group("web", 2, 0, 2, members=full_group().members), SPOT) == "ASG web is not opted in"


def test_release_waits_for_the_replacement_or_the_deadline() -> None:
    pending = Group("web", 3, 0, 3, members=(*full_group().members, Member("i-0000000000000000c", "Pending")))
    wait = release_decision(pending, spot_id=SPOT, now=100, deadline=200)
    assert (wait.terminate_spot, wait.done) == (False, False)
    late = release_decision(pending, spot_id=SPOT, now=200, deadline=200)
    assert (late.terminate_spot, late.done) == (True, True) and late.why.startswith("deadline")
    reclaimed = Group("web", 3, 0, 3, members=(full_group().members[0], Member("i-0000000000000000c", "InService")))
    gone = release_decision(reclaimed, spot_id=SPOT, now=100, deadline=200)
    assert (gone.terminate_spot, gone.lower_desired_to, gone.done) == (False, 2, True)
    assert release_deadline(1000.0) == 1100.0 and release_deadline(1000.0, 6) == 1003.0


def test_demo_calls_fleet_cost_and_one_interruption(market_aws: EmbeddedAws) -> None:
    from asg_optimizer.demo.fleet_cost import fleet_hourly_cost
    from asg_optimizer.local.events import run_interruption

    aws = market_aws
    _, spot = group_with_spot(aws)
    aws.ec2_model.market.set_price("m5.large", "us-east-1a", 0.03)
    mixed = fleet_hourly_cost(["web"])
    assert mixed.by_group == {"web": round(0.096 + 0.03, 4)} and mixed.total == 0.126
    assert mixed.saving_against(type(mixed)(total=0.192)) == (0.066, 34.4)
    run = run_interruption(aws, "web")
    assert (run.spot_instance_id, run.status, run.violations) == (spot, "SUCCEEDED", [])
    assert run.lowest_in_service >= run.desired == 2 and 0 < run.requested_after_seconds < release_deadline(0, NOTICE)
    assert fleet_hourly_cost(["web"]).total == 0.192  # two on-demand now: the fallback's replacement
