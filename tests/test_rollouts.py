"""Rollouts: the pure decisions (batches, checkpoints, the gate), and rollouts on the embedded AWS through child
executions of the replacement workflow: the mix kept and never a dip, skip matching, checkpoints that wait for
`rollout resume`, an alarm stopping and rolling back, a child failure beyond the budget, cancel, and refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asg_optimizer.local import interleaving
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.events import interrupt
from asg_optimizer.local.faults import FaultInjector
from asg_optimizer.local.group_builder import GroupSpec, attach_spot, create_group, create_network, new_template_version
from asg_optimizer.local.invariants import InvariantChecker
from stack.description import INTERRUPTION, PAUSE_FAILURE_BUDGET, ROLLOUT, STACK
from tasks.aws import commitments
from tasks.core.coordination import RolloutClaim
from tasks.core.coordination import rollout_claim as rollout_claim_of
from tasks.core.errors import InvalidInput
from tasks.core.pause import ALARM, AlarmState
from tasks.core.rollout import (
    CHECKPOINT,
    CONTINUE,
    DONE,
    ROLLBACK,
    STOP,
    TIMEOUT_SECONDS,
    VERSION_TAG,
    Gate,
    batch_size,
    checkpoint_after,
    gate,
    parse_rollout_request,
    resume_gate,
    rollout_name,
    settle,
)
from tasks.core.sweep import stale_rollout_claim
from tests.cli_helpers import cli, cli_json
from tests.conftest import FAST
from tests.test_commitment_swaps import buy_ri
from tests.test_scan import run_scan
from tests.test_sweep import run_sweep
from tests.workflow_helpers import states_entered

# --- the pure decisions ---------------------------------------------------------------------------------------


@given(total=st.integers(1, 300), percent=st.integers(1, 100))
def test_a_percentage_batch_is_rounded_up_and_never_empty(total: int, percent: int) -> None:
    size = batch_size(f"{percent}%", total)
    assert 1 <= size <= total and size >= percent * total / 100 and (size - 1) < max(1, percent * total / 100)


@given(lengths=st.lists(st.integers(1, 5), min_size=1, max_size=10),
       points=st.lists(st.integers(1, 100), unique=True, max_size=4).map(sorted))
def test_checkpoints_fall_at_the_first_batch_reaching_each_percentage_never_at_the_end(
        lengths: list[int], points: list[int]) -> None:
    after = checkpoint_after(lengths, points)
    total = sum(lengths)
    assert all(i < len(lengths) - 1 for i in after) and after == sorted(set(after))
    done = [sum(lengths[:i + 1]) for i in range(len(lengths))]
    for i in after:  # each pause is where some checkpoint is first reached
        assert any(done[i] * 100 >= p * total and (i == 0 or done[i - 1] * 100 < p * total) for p in points)


def _gate(**overrides: Any) -> Any:
    values: dict[str, Any] = dict(failed=0, budget=0, alarms={"a": AlarmState("a", "OK")}, named=["a"], moved=2,
                                  rollback_on_failure=True, batch_index=0, batch_count=3, checkpoints=[],
                                  cancelled=False, paused=None)
    return gate(**(values | overrides))


def test_a_child_whose_name_a_running_swap_holds_is_kept_in_flight_not_failed() -> None:
    results = [{"name": "web-i-0abc12345-20261202T070000", "status": "FAILED", "input": {"instance_id": "i-0abc12345"},
                "error": "StepFunctions.ExecutionAlreadyExistsException"},
               {"name": "web-i-0def12345-20261202T070000", "status": "FAILED", "input": {"instance_id": "i-0def12345"},
                "error": "States.TaskFailed"}]
    moved, kept, failed = settle(results, {})
    assert moved == [] and [k["outcome"] for k in kept] == ["in-flight"]
    assert [f["instance_id"] for f in failed] == ["i-0def12345"]


def test_the_gate() -> None:
    assert _gate().action == CONTINUE
    assert _gate(checkpoints=[0]).action == CHECKPOINT
    assert _gate(batch_index=2).action == DONE
    firing = _gate(alarms={"a": AlarmState("a", ALARM)})
    assert (firing.action, firing.why) == (ROLLBACK, "alarm a in ALARM: rolling back 2 moved instance(s)")
    assert _gate(alarms={"a": AlarmState("a", ALARM)}, rollback_on_failure=False).action == STOP
    assert _gate(alarms={"a": AlarmState("a", ALARM)}, moved=0).action == STOP
    assert _gate(failed=1).why == "1 replacement(s) failed, more than the budget of 0: rolling back 2 moved instance(s)"
    assert _gate(failed=1, budget=1).action == CONTINUE
    assert _gate(cancelled=True).why == "cancelled"
    assert _gate(paused="paused: alarm x in ALARM").action == CHECKPOINT


def test_the_gate_after_a_resume_rechecks_before_the_next_batch() -> None:
    def resumed(**changes: Any) -> Any:
        settings: dict[str, Any] = {"failed": 0, "budget": 0, "alarms": {}, "named": [], "moved": 1,
                                    "rollback_on_failure": True, "next_index": 1, "batch_count": 3,
                                    "cancelled": False, "paused": None}
        return resume_gate(**(settings | changes))

    assert resumed() == Gate(CONTINUE, "batch 2 of 3")
    assert resumed(paused="paused: by hand since x: y") == Gate(CHECKPOINT, "holding before batch 2: paused: by "
                                                                            "hand since x: y")
    assert resumed(named=["a"], alarms={"a": AlarmState("a", ALARM)}) == Gate(
        ROLLBACK, "alarm a in ALARM: rolling back 1 moved instance(s)")
    assert resumed(named=["a"], alarms={}, moved=0) == Gate(STOP, "alarm a not found")
    assert resumed(cancelled=True, paused="paused") == Gate(STOP, "cancelled")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("to", {"launch_template_version": "v2"}, "to must be {launch_template_version: N} (a version number) or "
                                              "{image_id: ami-...}, got {'launch_template_version': 'v2'}"),
    ("batch", "0", "batch must be a number of instances (1 or more) or a percentage such as '20%', got '0'"),
    ("batch", "150%", "batch must be a number of instances (1 or more) or a percentage such as '20%', got '150%'"),
    ("checkpoints", [50, 25], "checkpoints must be increasing percentages from 1 to 100, such as [25, 50], got "
                              "[50, 25]"),
    ("bake_seconds", -1, "bake_seconds must be a whole number from 0 to 86400, got -1"),
    ("skip_matching", "yes", "skip_matching must be true or false, got 'yes'"),
])
def test_bad_rollout_input_is_refused_naming_the_value(field: str, value: Any, message: str) -> None:
    data = {"asg_name": "web", "to": {"launch_template_version": "2"}, field: value}
    with pytest.raises(InvalidInput) as refused:
        parse_rollout_request(data)
    assert str(refused.value) == message


# --- on the embedded AWS --------------------------------------------------------------------------------------


def start(aws: EmbeddedAws, **payload: Any) -> str:
    payload = {"asg_name": "web", "to": {"launch_template_version": "2"}, "timing": FAST} | payload
    name = rollout_name(payload["asg_name"], datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")[:15])
    return aws.client("stepfunctions").start_execution(
        stateMachineArn=aws.deployment.state_machine_arns[ROLLOUT], name=name + f"{time.monotonic_ns() % 1000:03d}",
        input=json.dumps(payload))["executionArn"]


def mixed_group(aws: EmbeddedAws, **tags: str) -> tuple[list[str], str]:
    """web: 2 on-demand and 1 spot on version 1 (desired 3, max 4), version 2 ready; (on-demand ids, spot id)."""
    network = create_network()
    raw = create_group(network, GroupSpec("web", desired=2, max_size=4, extra_tags=tags))
    on_demand = [i["InstanceId"] for i in raw["Instances"]]
    autoscaling = aws.client("autoscaling")
    autoscaling.update_auto_scaling_group(AutoScalingGroupName="web", DesiredCapacity=2)
    spot = attach_spot(network, raw)
    assert new_template_version(raw) == "2"
    return on_demand, spot


TOP_STATES = set(json.loads(STACK.state_machine(ROLLOUT).path.read_text())["States"])


def path(aws: EmbeddedAws, arn: str) -> list[str]:
    """The rollout's own states entered, in order (its Map iterations' states left out: see `children`)."""
    return [s for s in states_entered(aws, arn) if s in TOP_STATES]


def members(aws: EmbeddedAws) -> dict[str, dict[str, Any]]:
    group = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])[
        "AutoScalingGroups"][0]
    ids = [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"]
    found = aws.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    return {i["InstanceId"]: i for r in found for i in r["Instances"]}


def version_of(instance: dict[str, Any]) -> str:
    return next(t["Value"] for t in instance.get("Tags", []) if t["Key"] == VERSION_TAG)


def rollout_claim(aws: EmbeddedAws, asg_name: str = "web") -> dict[str, Any] | None:
    """The group's rollout claim in its coordination record (None: no rollout holds the group)."""
    item = aws.client("dynamodb").get_item(TableName=aws.deployment.table_names["cooldowns"],
                                           Key={"cooldown_key": {"S": f"group#{asg_name}"}},
                                           ConsistentRead=True).get("Item") or {}
    claim = item.get("rollout", {}).get("M")
    return {k: next(iter(v.values())) for k, v in claim.items()} if claim else None


def wait_at(aws: EmbeddedAws, arn: str, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while path(aws, arn)[-1:] != [state]:
        assert aws.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "RUNNING"
        assert time.monotonic() < deadline, states_entered(aws, arn)
        time.sleep(0.2)


def test_a_rollout_of_a_mixed_group_keeps_the_mix_never_dips_and_skips_what_matches(aws: EmbeddedAws) -> None:
    on_demand, spot = mixed_group(aws, **{"AsgOptimiser:MinOnDemand": "1"})
    with InvariantChecker(["web"]) as check:  # one a batch: Validate counts a concurrent claim as an on-demand
        arn = start(aws, batch="1")           # leaving, so two at once could keep one on-demand (refused, kept)
        described = aws.wait(arn, timeout=120)
    assert check.finish() == []
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert path(aws, arn) == ["Plan", "Planned", *["RunBatch", "Bake", "Gate", "Route"] * 3, "Release", "Ended",
                              "RolledOut"]
    assert rollout_claim(aws) is None  # released by the ending
    after = members(aws)
    markets = sorted(i.get("InstanceLifecycle", "on-demand") for i in after.values())
    # the floor (MinOnDemand 1) keeps one on-demand: replaced by an on-demand from version 2; the rest spots
    assert markets == ["on-demand", "spot", "spot"]
    assert sorted(version_of(i) for i in after.values()) == ["2", "2", "2"]
    assert not {*on_demand, spot} & set(after)
    samples = check.for_group("web")
    assert samples and all(s.in_service >= s.desired for s in samples)
    children = aws.client("stepfunctions").list_executions(stateMachineArn=aws.deployment.replace_arn)["executions"]
    stamp = arn.rsplit("-rollout-", 1)[1][:15]
    assert len(children) == 3 and all(c["name"].endswith(stamp) for c in children)
    assert {json.loads(aws.client("stepfunctions").describe_execution(executionArn=c["executionArn"])["input"])[
        "reason"] for c in children} == {"rollout"}
    again = start(aws, batch="2")  # skip matching: every instance runs version 2 now
    assert aws.wait(again, timeout=60)["status"] == "SUCCEEDED"
    assert path(aws, again) == ["Plan", "Planned", "NothingToDo"]
    assert plan_of(aws, again)["why"] == "every instance already runs launch template version 2"
    assert rollout_claim(aws) is None


def plan_of(aws: EmbeddedAws, arn: str) -> dict[str, Any]:
    pages = aws.client("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=arn)
    exited = next(e for page in pages for e in page["events"] if e["type"].endswith("StateExited")
                  and e["stateExitedEventDetails"]["name"] == "Plan")
    return dict(json.loads(exited["stateExitedEventDetails"]["output"]))


def test_an_on_demand_a_reserved_instance_covers_is_rolled_to_an_on_demand_that_keeps_the_coverage(
        aws: EmbeddedAws) -> None:
    """Without the RI every instance could go to spot (no floor); the one the RI pays for stays on-demand, as the
    scanner keeps it: the new on-demand has its type and zone, so the RI covers it in turn."""
    on_demand, spot = mixed_group(aws, **{"AsgOptimiser:GracePeriod": "0"})
    covered = aws.client("ec2").describe_instances(InstanceIds=[on_demand[0]])["Reservations"][0]["Instances"][0]
    zone = covered["Placement"]["AvailabilityZone"]
    ri = buy_ri(aws, zone=zone)
    commitments.reset_cache()
    with InvariantChecker(["web"]) as check:
        arn = start(aws, batch="1")
        described = aws.wait(arn, timeout=120)
    assert check.finish() == []
    assert described["status"] == "SUCCEEDED", described.get("cause")
    planned = plan_of(aws, arn)
    assert planned["markets"] == {on_demand[0]: "on-demand", on_demand[1]: "spot", spot: "spot"}
    assert planned["covered"] == {on_demand[0]: f"kept on-demand: covered by RI {ri[:8]}… (m5.large, {zone}, "
                                                "1 of 1 in use)"}
    after = members(aws)
    assert sorted(i.get("InstanceLifecycle", "on-demand") for i in after.values()) == ["on-demand", "spot", "spot"]
    new = next(i for i in after.values() if not i.get("InstanceLifecycle"))
    assert (new["InstanceType"], new["Placement"]["AvailabilityZone"], version_of(new)) == ("m5.large", zone, "2")
    commitments.reset_cache()
    kept = {p["instance_id"]: p["why"] for p in run_scan(aws, dry_run=True)["plan"]}
    assert kept[new["InstanceId"]].startswith(f"kept on-demand: covered by RI {ri[:8]}…")


@pytest.mark.long
def test_an_alarm_firing_mid_batch_stops_the_rollout_after_it_and_rolls_back(aws: EmbeddedAws) -> None:
    on_demand, spot = mixed_group(aws)
    aws.put_alarm("web-5xx", "OK")
    arn = start(aws, batch="1", checkpoints=[30], alarms=["web-5xx"])
    wait_at(aws, arn, "Checkpoint")
    assert "Checkpoint" in cli("rollout", "status", "--asg", "web").stdout
    # batch 2's child stops right after it attached its replacement; the alarm fires there
    with interleaving.pause_after("attach-spot", "AttachInstances") as attached:
        resumed = cli("rollout", "resume", "--asg", "web")
        assert resumed.exit_code == 0, resumed.output
        attached.wait()
        aws.set_alarm("web-5xx", ALARM)
    described = aws.wait(arn, timeout=120)
    assert (described["status"], described.get("error")) == ("FAILED", "RolloutRolledBack")
    assert path(aws, arn) == ["Plan", "Planned", "RunBatch", "Bake", "Gate", "Route", "Checkpoint", "Resumed",
                              "Route", "RunBatch", "Bake", "Gate", "Route", "RunRollback", "Release", "Ended",
                              "RolledBack"]
    assert rollout_claim(aws) is None
    after = members(aws)
    assert sorted(version_of(i) for i in after.values()) == ["1", "1", "1"]  # the two moved ones back on 1
    assert len({*on_demand, spot} & set(after)) == 1  # the third was never touched


@pytest.mark.long
def test_an_alarm_at_a_checkpoint_stops_the_rollout_when_resumed_before_another_batch(aws: EmbeddedAws) -> None:
    on_demand, spot = mixed_group(aws)
    aws.put_alarm("web-5xx", "OK")
    arn = start(aws, batch="1", checkpoints=[30], alarms=["web-5xx"])
    wait_at(aws, arn, "Checkpoint")
    aws.set_alarm("web-5xx", ALARM)
    assert cli("rollout", "resume", "--asg", "web").exit_code == 0
    described = aws.wait(arn, timeout=120)
    assert (described["status"], described.get("error")) == ("FAILED", "RolloutRolledBack")
    assert path(aws, arn) == ["Plan", "Planned", "RunBatch", "Bake", "Gate", "Route", "Checkpoint", "Resumed",
                              "Route", "RunRollback", "Release", "Ended", "RolledBack"]
    after = members(aws)
    assert sorted(version_of(i) for i in after.values()) == ["1", "1", "1"]
    assert len({*on_demand, spot} & set(after)) == 2  # batch 2 never started


def test_a_child_failure_beyond_the_budget_stops_the_rollout(aws: EmbeddedAws) -> None:
    mixed_group(aws)
    with FaultInjector() as faults:
        faults.fail("ec2", "CreateFleet", "InsufficientInstanceCapacity", times=10)
        arn = start(aws, batch="1", failure_budget=0)
        described = aws.wait(arn, timeout=120)
    assert (described["status"], described.get("error")) == ("FAILED", "RolloutStopped")
    assert path(aws, arn) == ["Plan", "Planned", "RunBatch", "Bake", "Gate", "Route", "Release", "Ended", "Stopped"]
    assert rollout_claim(aws) is None


def test_cancel_at_a_checkpoint(aws: EmbeddedAws) -> None:
    mixed_group(aws)
    arn = start(aws, batch="1", checkpoints=[30])
    wait_at(aws, arn, "Checkpoint")
    assert cli("rollout", "cancel", "--asg", "web").exit_code == 0
    described = aws.wait(arn, timeout=60)
    assert (described["status"], described.get("error")) == ("FAILED", "RolloutCancelled")
    assert path(aws, arn)[-5:] == ["Route", "Checkpoint", "Release", "Ended", "Cancelled"]
    assert rollout_claim(aws) is None
    assert cli("rollout", "resume", "--asg", "web").exit_code == 2


def test_an_instance_refresh_in_progress_refuses_the_rollout(aws: EmbeddedAws) -> None:
    mixed_group(aws)
    aws.client("autoscaling").start_instance_refresh(AutoScalingGroupName="web")
    arn = start(aws)
    described = aws.wait(arn, timeout=60)
    output = json.loads(described["output"])
    assert described["status"] == "SUCCEEDED" and output["outcome"] == "refused"
    assert output["why"].startswith("ASG web has an instance refresh ") and "InProgress" in output["why"]
    assert path(aws, arn) == ["Plan", "Planned", "Refused"]
    assert rollout_claim(aws) is None  # refused before the claim


def test_two_rollouts_of_one_group_the_second_is_refused(aws: EmbeddedAws) -> None:
    mixed_group(aws)
    first = start(aws, batch="1", checkpoints=[30])
    wait_at(aws, first, "Checkpoint")
    claim = rollout_claim(aws)
    assert claim is not None and claim["execution"] == first.rsplit(":", 1)[1]
    assert int(claim["expires"]) - int(claim["since"]) == TIMEOUT_SECONDS  # bounded by the execution's timeout
    second = start(aws)
    output = json.loads(aws.wait(second, timeout=60)["output"])
    assert output["outcome"] == "refused" and output["why"] == (
        f"ASG web already has a rollout running: {first.rsplit(':', 1)[1]}")
    assert rollout_claim(aws) == claim  # the refused one neither took nor dropped it
    assert cli("rollout", "cancel", "--asg", "web").exit_code == 0
    aws.wait(first, timeout=60)
    assert rollout_claim(aws) is None


@pytest.fixture
def lagging_aws() -> Iterator[EmbeddedAws]:
    """ListExecutions lags an hour behind StartExecution: a "is another rollout listed" check sees nothing, however
    slowly the second rollout starts (a minute could pass on a loaded machine)."""
    with EmbeddedAws(boot_delay_seconds=1.5, retry_scale=0.05, list_executions_lag_seconds=3600) as embedded:
        yield embedded


def test_two_rollouts_started_together_exactly_one_runs_the_other_refused_naming_it(lagging_aws: EmbeddedAws
                                                                                     ) -> None:
    aws = lagging_aws
    mixed_group(aws)
    # Both Plans read the group before either goes on (the worst interleaving), and neither is listed yet.
    with interleaving.hold_after_first_call("rollout-plan", 2) as hold:
        arns = [start(aws, batch="1", checkpoints=[30]), start(aws, batch="1", checkpoints=[30])]
        deadline = time.monotonic() + 60
        while not all("Planned" in path(aws, a) for a in arns):
            assert time.monotonic() < deadline, [states_entered(aws, a) for a in arns]
            time.sleep(0.2)
    assert hold.tripped and not hold.timed_out
    running = [a for a in arns if "RunBatch" in path(aws, a)]
    assert len(running) == 1, [path(aws, a) for a in arns]
    (winner,), (loser,) = running, [a for a in arns if a not in running]
    described = aws.wait(loser, timeout=60)
    assert path(aws, loser) == ["Plan", "Planned", "Refused"]
    assert json.loads(described["output"])["why"] == (
        f"ASG web already has a rollout running: {winner.rsplit(':', 1)[1]}")
    claim = rollout_claim(aws)
    assert claim is not None and claim["execution"] == winner.rsplit(":", 1)[1]
    wait_at(aws, winner, "Checkpoint")  # its child has ended: none outlives the test
    aws.client("stepfunctions").stop_execution(executionArn=winner)


def test_a_rollout_stopped_from_outside_leaves_its_claim_to_the_sweep(aws: EmbeddedAws) -> None:
    """StopExecution runs no Catch, so no Release: the sweep drops the claim of a rollout not RUNNING once the
    claim is older than the orphan bound (15 minutes; ListExecutions may not list a rollout just started)."""
    mixed_group(aws)
    arn = start(aws, batch="1", checkpoints=[30])
    wait_at(aws, arn, "Checkpoint")
    name = arn.rsplit(":", 1)[1]
    aws.client("stepfunctions").stop_execution(executionArn=arn)
    assert aws.wait(arn, timeout=30)["status"] == "ABORTED"
    assert rollout_claim(aws) is not None and "Release" not in path(aws, arn)
    young = run_sweep(aws)  # the claim is seconds old: left, as the listing may lag
    assert rollout_claim(aws) is not None and not [a for a in young["actions"] if "rollout claim" in a]
    later = run_sweep(aws, now=(datetime.now(UTC) + timedelta(minutes=16)).isoformat())
    assert f"released the rollout claim of {name} on ASG web: rollout not running" in later["actions"]
    assert rollout_claim(aws) is None
    again = start(aws, batch="1", checkpoints=[30])  # the group is free for the next rollout
    wait_at(aws, again, "Checkpoint")
    assert rollout_claim(aws)["execution"] == again.rsplit(":", 1)[1]  # type: ignore[index]
    aws.client("stepfunctions").stop_execution(executionArn=again)


def test_the_sweep_leaves_a_running_rollouts_claim_and_drops_an_expired_one() -> None:
    claim = RolloutClaim("web-rollout-20261202T110000", since=1000, expires=1000 + TIMEOUT_SECONDS)
    running = {claim.execution}
    assert not stale_rollout_claim(claim, running, now=1000 + 3600, min_age_seconds=900)
    assert not stale_rollout_claim(claim, set(), now=1000 + 899, min_age_seconds=900)  # may be listed late
    assert stale_rollout_claim(claim, set(), now=1000 + 900, min_age_seconds=900)
    assert stale_rollout_claim(claim, running, now=claim.expires, min_age_seconds=900)  # cannot be running


def test_the_claim_is_bounded_by_the_rollout_state_machines_timeout() -> None:
    asl = json.loads(STACK.state_machine(ROLLOUT).path.read_text())
    assert asl["TimeoutSeconds"] == TIMEOUT_SECONDS
    assert rollout_claim_of("r", 1000.7, TIMEOUT_SECONDS) == RolloutClaim("r", 1000, 1000 + TIMEOUT_SECONDS)


def test_cli_refuses_bad_rollout_input_with_one_line(aws: EmbeddedAws) -> None:
    mixed_group(aws)
    for args, message in [
        (["--asg", "web"], "error: give exactly one of --version N or --image ami-..."),
        (["--asg", "web", "--version", "2", "--batch", "0"], "error: batch must be a number of instances (1 or "
                                                            "more) or a percentage such as '20%', got '0'"),
        (["--asg", "nope", "--version", "2"], "error: ASG nope does not exist in us-east-1"),
    ]:
        result = cli("rollout", "start", *args)
        assert (result.exit_code, result.stderr.strip()) == (2, message)
    assert aws.client("stepfunctions").list_executions(
        stateMachineArn=aws.deployment.state_machine_arns[ROLLOUT])["executions"] == []


def test_status_counts_instances_behind_the_version_the_group_launches(aws: EmbeddedAws) -> None:
    mixed_group(aws)
    group = next(g for g in cli_json("status")["groups"] if g["asg_name"] == "web")
    assert group["launches"] == "version 2 (ami-0b2c3d4e5f6071829)" and len(group["behind"]) == 3
    assert aws.wait(start(aws, batch="3"), timeout=120)["status"] == "SUCCEEDED"
    group = next(g for g in cli_json("status")["groups"] if g["asg_name"] == "web")
    assert group["behind"] == []


def test_a_swap_in_flight_and_a_rollout_never_work_on_the_same_instance(aws: EmbeddedAws) -> None:
    on_demand, _ = mixed_group(aws)
    swap_name = f"web-{on_demand[0]}-manual"  # never a child's name: only the instance's claim can refuse it
    # The swap stays in Validate right after its claim (Validate's one UpdateItem) until the rollout has ended: held
    # by the embedded AWS, not by a Wait state the rollout must outrun, so no machine is too slow for it.
    with interleaving.pause_after("validate", "UpdateItem", timeout=120) as claimed:
        swap = aws.start_swap("web", on_demand[0], timing=FAST, name=swap_name)
        claimed.wait()
        arn = start(aws, batch="3")
        described = aws.wait(arn, timeout=120)
        assert states_entered(aws, swap) == ["HasStartDelay", "Validate"]  # its claim held all along
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["kept"] == [
        {"instance_id": on_demand[0], "outcome": "refused",
         "why": f"instance {on_demand[0]} is already being replaced by execution {swap_name}"}]
    aws.client("stepfunctions").stop_execution(executionArn=swap)


def test_rollout_wait_prints_one_line_per_change_not_per_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rollout start --wait` in a CI log (issue 17 item 9): the same state polled again prints nothing."""
    import io

    from rich.console import Console

    from asg_optimizer.commands import rollout as rollout_cli

    polls = iter([
        {"name": "web-rollout-1", "status": "RUNNING", "state": "Plan"},
        {"name": "web-rollout-1", "status": "RUNNING", "state": "Plan"},
        {"name": "web-rollout-1", "status": "RUNNING", "state": "Batch", "batch": 1, "batches": 2, "moved": 0,
         "kept": 0, "failed": 0},
        {"name": "web-rollout-1", "status": "RUNNING", "state": "Batch", "batch": 1, "batches": 2, "moved": 0,
         "kept": 0, "failed": 0},
        {"name": "web-rollout-1", "status": "SUCCEEDED", "state": None, "batch": 2, "batches": 2, "moved": 2,
         "kept": 0, "failed": 0},
    ])
    monkeypatch.setattr(rollout_cli, "POLL_SECONDS", 0.0)
    out = io.StringIO()
    rollout_cli.watch(lambda: next(polls), Console(file=out, width=200))
    assert out.getvalue().splitlines() == [
        "web-rollout-1: RUNNING, at Plan",
        "web-rollout-1: RUNNING, at Batch; batch 1 of 2, 0 moved, 0 kept, 0 failed",
        "web-rollout-1: SUCCEEDED, at -; batch 2 of 2, 2 moved, 0 kept, 0 failed",
    ]


def test_a_swap_and_a_rollout_of_one_instance_started_together_one_replaces_it_the_other_is_refused(
        aws: EmbeddedAws) -> None:
    """The per-instance claim, end to end: both Validates read the group before either claims (the worst
    interleaving); exactly one replaces the instance (one replacement launched), the other is refused naming it."""
    raw = create_group(create_network(), GroupSpec("web", desired=1, max_size=2))
    (only,) = [i["InstanceId"] for i in raw["Instances"]]
    assert new_template_version(raw) == "2"
    swap_name = f"web-{only}-manual"
    with interleaving.hold_after_first_call("validate", 2) as hold:
        arn = start(aws, batch="1")
        swap = aws.start_swap("web", only, timing=FAST, name=swap_name)
        rolled, swapped = aws.wait(arn, timeout=120), aws.wait(swap, timeout=120)
    assert hold.tripped and not hold.timed_out
    assert (rolled["status"], swapped["status"]) == ("SUCCEEDED", "SUCCEEDED"), (rolled.get("cause"),
                                                                                 swapped.get("cause"))
    (child_execution,) = [c for c in children(aws) if c["name"] != swap_name]
    out = json.loads(rolled["output"])
    swap_output = json.loads(swapped["output"])
    if out["moved"]:  # the rollout's child claimed first
        assert swap_output["outcome"] == "refused" and swap_output["reason"] == "SwapInFlight"
        assert swap_output["why"] == f"instance {only} is already being replaced by execution {child_execution['name']}"
    else:
        assert out["kept"] == [{"instance_id": only, "outcome": "refused",
                                "why": f"instance {only} is already being replaced by execution {swap_name}"}]
        assert swap_output.get("outcome") is None  # Swapped
    replacements = aws.client("ec2").describe_instances(
        Filters=[{"Name": "tag:AsgOptimiser:Replaces", "Values": [only]}])["Reservations"]
    assert sum(len(r["Instances"]) for r in replacements) == 1


# --- rollouts and the fleet-wide pause ------------------------------------------------------------------------


def children(aws: EmbeddedAws) -> list[dict[str, Any]]:
    return list(aws.client("stepfunctions").list_executions(stateMachineArn=aws.deployment.replace_arn)["executions"])


def wait_for_path(aws: EmbeddedAws, arn: str, tail: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while path(aws, arn)[-len(tail):] != tail:
        assert time.monotonic() < deadline, path(aws, arn)
        time.sleep(0.2)


def test_a_pause_by_alarm_holds_a_running_rollout_after_its_batch_and_it_goes_on_once_resumed(
        aws: EmbeddedAws) -> None:
    aws.put_alarm("web-pause", "OK")
    mixed_group(aws, **{"AsgOptimiser:PauseOnAlarms": "web-pause"})
    with interleaving.pause_after("attach-spot", "AttachInstances") as attached:  # batch 1's child, mid-swap
        arn = start(aws, batch="1")
        attached.wait()
        aws.set_alarm("web-pause", ALARM)
    wait_at(aws, arn, "Checkpoint")
    assert [(c["status"], json.loads(aws.client("stepfunctions").describe_execution(
        executionArn=c["executionArn"])["output"]).get("outcome", "swapped")) for c in children(aws)] == [
        ("SUCCEEDED", "swapped")]  # the running child finished; no batch started since
    shown = cli_json("rollout", "status", "--asg", "web")
    assert shown["why"].startswith("holding before batch 2: paused: alarm web-pause in ALARM since ")
    assert (shown["state"], shown["moved"], shown["batch"]) == ("Checkpoint", 1, 2)
    group = next(g for g in cli_json("status")["groups"] if g["asg_name"] == "web")
    assert group["paused"].startswith("paused: alarm web-pause in ALARM since ")
    aws.set_alarm("web-pause", "OK")
    assert cli("rollout", "resume", "--asg", "web").exit_code == 0
    described = aws.wait(arn, timeout=120)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert path(aws, arn) == ["Plan", "Planned", "RunBatch", "Bake", "Gate", "Route", "Checkpoint", "Resumed",
                              "Route", *["RunBatch", "Bake", "Gate", "Route"] * 2, "Release", "Ended", "RolledOut"]
    assert sorted(version_of(i) for i in members(aws).values()) == ["2", "2", "2"]


@pytest.mark.long
def test_a_pause_by_hand_holds_a_running_rollout_resume_while_paused_holds_it_again_and_a_fallback_still_runs(
        aws: EmbeddedAws) -> None:
    mixed_group(aws)
    with interleaving.pause_after("attach-spot", "AttachInstances") as attached:
        arn = start(aws, batch="1")
        attached.wait()
        assert cli("pause", "--why", "db migration").exit_code == 0
    wait_at(aws, arn, "Checkpoint")
    shown = cli_json("rollout", "status", "--asg", "web")
    assert shown["why"].startswith("holding before batch 2: paused: by hand since ")
    assert shown["why"].endswith(": db migration") and shown["moved"] == 1
    assert cli_json("status")["paused"] == shown["why"].removeprefix("holding before batch 2: ")
    assert cli("rollout", "resume", "--asg", "web").exit_code == 0  # still paused: it holds again, starts nothing
    wait_for_path(aws, arn, ["Checkpoint", "Resumed", "Route", "Checkpoint"])
    assert len(children(aws)) == 1
    # An interruption fallback is never paused: the warning for a spot of the group is handled now.
    before = members(aws)
    spot = next(i for i, found in before.items()  # batch 1's replacement, on the target
                if found.get("InstanceLifecycle") == "spot" and version_of(found) == "2")
    name = interrupt(aws, spot).results["spot-interruption"]["execution_name"]
    fallback = aws.deployment.state_machine_arns[INTERRUPTION].replace(":stateMachine:", ":execution:") + f":{name}"
    assert aws.wait(fallback, timeout=60)["status"] == "SUCCEEDED"
    assert cli("resume").exit_code == 0
    assert cli("rollout", "resume", "--asg", "web").exit_code == 0
    described = aws.wait(arn, timeout=120)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert path(aws, arn) == ["Plan", "Planned", "RunBatch", "Bake", "Gate", "Route",
                              *["Checkpoint", "Resumed", "Route"] * 2,  # held, resumed while paused: held again
                              *["RunBatch", "Bake", "Gate", "Route"] * 2, "Release", "Ended", "RolledOut"]
    assert len(json.loads(described["output"])["moved"]) == 3
    after = members(aws)
    assert spot not in after and len(after) == 3  # the fallback replaced it (an instance the rollout never planned)
    assert [version_of(i) for i in after.values() if i["InstanceId"] != fallback_instance(aws, after, before)] == [
        "2", "2"]


def fallback_instance(aws: EmbeddedAws, after: dict[str, Any], before: dict[str, Any]) -> str:
    """The member the group launched for the interruption fallback: the one on-demand that is in neither the
    members before it nor the rollout's replacements (those are tagged with the instance they replace)."""
    (found,) = [i for i, f in after.items() if i not in before and not f.get("InstanceLifecycle")
                and not any(t["Key"] == "AsgOptimiser:Replaces" for t in f.get("Tags", []))]
    return found


@pytest.fixture
def budgeted() -> Iterator[EmbeddedAws]:
    """A stack whose pause budget tolerates no failed swap."""
    with EmbeddedAws(boot_delay_seconds=1.5, retry_scale=0.05, environment={PAUSE_FAILURE_BUDGET: "0"}) as embedded:
        yield embedded


def test_a_rollout_does_not_start_while_paused_by_hand_or_by_the_failure_budget(budgeted: EmbeddedAws) -> None:
    aws = budgeted
    on_demand, _ = mixed_group(aws)
    assert cli("pause", "--why", "freeze").exit_code == 0
    by_hand = aws.wait(start(aws), timeout=60)
    why = json.loads(by_hand["output"])["why"]
    assert why.startswith("paused: by hand since ") and why.endswith(": freeze")
    assert cli("resume").exit_code == 0
    with FaultInjector() as faults:
        faults.fail("ec2", "CreateFleet", "InsufficientInstanceCapacity")
        assert aws.wait(aws.start_swap("web", on_demand[0], timing=FAST), timeout=60)["status"] == "FAILED"
    budget = aws.wait(start(aws), timeout=60)
    assert json.loads(budget["output"])["why"] == "paused: 1 swap failed in the last hour, more than the budget of 0"
    assert path(aws, budget["executionArn"]) == ["Plan", "Planned", "Refused"]
    assert rollout_claim(aws) is None and len(children(aws)) == 1  # the failed swap only


def test_stopping_a_rollout_stops_its_running_sync_child_as_in_aws(aws: EmbeddedAws) -> None:
    """Run a Job (.sync): a stopped execution stops the job its Task waits for, here the batch's swap (parked in
    its StartDelay, so it is RUNNING whatever the machine's speed)."""
    mixed_group(aws)
    sfn = aws.client("stepfunctions")
    arn = start(aws, batch="1", timing={**FAST, "start_delay_seconds": 3600})
    deadline = time.monotonic() + 60  # a hang guard: the swap starts with the first batch
    while not (children := sfn.list_executions(stateMachineArn=aws.deployment.replace_arn)["executions"]):
        assert time.monotonic() < deadline, path(aws, arn)
        time.sleep(0.05)
    child = children[0]["executionArn"]
    sfn.stop_execution(executionArn=arn)
    assert aws.wait(arn, timeout=30)["status"] == "ABORTED"
    assert aws.wait(child, timeout=30)["status"] == "ABORTED"
