"""Commitment-aware swaps end to end on the embedded AWS: the scanner keeps what an RI pays for, resumes swaps when
it expires, and swaps a spot back to on-demand when an RI is bought, without flapping."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.invariants import InvariantChecker
from stack.description import STACK
from tasks.aws import commitments
from tests.cli_helpers import FAST_TIMING
from tests.conftest import FAST
from tests.test_scan import executions, run_scan
from tests.workflow_helpers import instances, members, state_of

POLICY = {"AsgOptimiser:GracePeriod": "0", "AsgOptimiser:AllowedTypes": "m5.large", "AsgOptimiser:MaxParallel": "2"}


@pytest.fixture(autouse=True)
def fresh_reads() -> None:
    commitments.reset_cache()


def buy_ri(aws: EmbeddedAws, instance_type: str = "m5.large", zone: str | None = "us-east-1a", count: int = 1) -> str:
    ec2 = aws.client("ec2")
    offering = ec2.describe_reserved_instances_offerings(
        InstanceType=instance_type, OfferingType="No Upfront", OfferingClass="standard", MaxDuration=31536000,
        Filters=[{"Name": "scope", "Values": ["Availability Zone" if zone else "Region"]}],
        **({"AvailabilityZone": zone} if zone else {}))["ReservedInstancesOfferings"][0]
    offering_id = offering["ReservedInstancesOfferingId"]
    bought = ec2.purchase_reserved_instances_offering(ReservedInstancesOfferingId=offering_id, InstanceCount=count)
    return str(bought["ReservedInstancesId"])


def verdicts(result: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {p["instance_id"]: (p["action"], p["why"]) for p in result["plan"]}


def test_scanner_keeps_the_on_demand_a_zonal_ri_covers_and_swaps_the_rest(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=2, max_size=4, zones=("a",), extra_tags=POLICY)
    ri = buy_ri(aws)
    found = verdicts(run_scan(aws, dry_run=True))
    ids = [i["InstanceId"] for i in raw["Instances"]]
    actions = sorted(found[i][0] for i in ids)
    assert actions == ["replace", "skip"]
    kept = next(found[i][1] for i in ids if found[i][0] == "skip")
    assert kept == f"kept on-demand: covered by RI {ri[:8]}… (m5.large, us-east-1a, 1 of 1 in use)"


def test_ri_expiry_resumes_forward_swaps(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=2, max_size=4, zones=("a",), extra_tags=POLICY)
    ri = buy_ri(aws)
    assert sorted(v[0] for v in verdicts(run_scan(aws, dry_run=True)).values()) == ["replace", "skip"]
    aws.commitments_model.expire(ri)
    commitments.reset_cache()  # a warm container would see it within COMMITMENTS_TTL_SECONDS
    assert sorted(v[0] for v in verdicts(run_scan(aws, dry_run=True)).values()) == ["replace", "replace"]


def test_commitments_ignore_swaps_as_if_there_were_none(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=2, max_size=4, zones=("a",),
               extra_tags={**POLICY, "AsgOptimiser:Commitments": "ignore"})
    buy_ri(aws)
    assert sorted(v[0] for v in verdicts(run_scan(aws, dry_run=True)).values()) == ["replace", "replace"]


def test_stack_setting_turns_commitment_awareness_off(aws: EmbeddedAws, make_group,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    make_group("web", desired=2, max_size=4, zones=("a",), extra_tags=POLICY)
    buy_ri(aws)
    scanner, lam = STACK.function("scanner").name(), aws.client("lambda")
    deployed = lam.get_function_configuration(FunctionName=scanner)["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName=scanner,  # as `commitments: ignore` deploys it
                                      Environment={"Variables": {**deployed, "COMMITMENTS": "ignore"}})
    monkeypatch.setenv("COMMITMENTS", "ignore")  # run_scan copies the variables into this process: undone after
    assert sorted(v[0] for v in verdicts(run_scan(aws, dry_run=True)).values()) == ["replace", "replace"]


def test_malformed_commitments_tag_skips_the_group_naming_tag_and_value(aws: EmbeddedAws, make_group) -> None:
    make_group("web", desired=1, max_size=2, extra_tags={**POLICY, "AsgOptimiser:Commitments": "maybe"})
    skipped = run_scan(aws, dry_run=True)["skipped_groups"]
    assert skipped == [{"asg_name": "web", "why": "ASG web: tag AsgOptimiser:Commitments='maybe' is malformed: "
                                                  "expected 'use' or 'ignore'"}]


def test_reverse_swap_after_an_ri_is_bought_and_no_flapping_across_three_scans(aws: EmbeddedAws,
                                                                                 make_group) -> None:
    raw = make_group("web", desired=1, max_size=2, zones=("a",), extra_tags=POLICY)
    first = aws.wait(aws.start_swap("web", raw["Instances"][0]["InstanceId"], timing=FAST))
    spot = json.loads(first["output"])["spot"]["spot_instance_id"]
    ri = buy_ri(aws)
    commitments.reset_cache()  # the manual swap's Validate read "none"; a warm container sees it within 5 minutes
    os.environ.pop("COMMITMENTS", None)
    t0 = datetime.now(UTC)
    scan1 = run_scan(aws, now=t0.isoformat(), timing=FAST)  # idle seen now: too young to act on
    assert scan1["started"] == [] and verdicts(scan1)[spot] == (
        "skip", f"stays spot for now: {ri[:8]}… idle for 0s, under the 900s needed before a swap back")
    assert scan1["idle_commitment_per_hour"] > 0
    with InvariantChecker(["web"], watch_spots=True) as watch:
        scan2 = run_scan(aws, now=(t0 + timedelta(minutes=16)).isoformat(), timing=FAST)
        assert len(scan2["started"]) == 1 and verdicts(scan2)[spot][0] == "to-on-demand"
        arn = next(e["executionArn"] for e in executions(aws) if e["name"] == scan2["started"][0])
        described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert json.loads(described["input"])["reason"] == "commitment"
    new_id = json.loads(described["output"])["spot"]["spot_instance_id"]
    assert "InstanceLifecycle" not in instances(aws, instance_id=new_id)[0] and state_of(aws, spot) == "terminated"
    assert members(aws, "web") == {new_id: "InService"}
    assert watch.finish() == []
    scan3 = run_scan(aws, now=(t0 + timedelta(minutes=21)).isoformat(), timing=FAST)
    assert scan3["started"] == [] and scan3["idle_commitment_per_hour"] == 0
    assert verdicts(scan3)[new_id] == (
        "skip", f"kept on-demand: covered by RI {ri[:8]}… (m5.large, us-east-1a, 1 of 1 in use)")


def test_cli_commitments_lists_use_kept_on_demand_and_what_it_would_return(aws: EmbeddedAws, make_group) -> None:
    from tests.cli_helpers import cli, cli_json

    raw = make_group("web", desired=2, max_size=4, zones=("a",), extra_tags=POLICY)
    assert cli("commitments").stdout.strip() == "no active Reserved Instances or Savings Plans in us-east-1"
    ri = buy_ri(aws, count=3)
    data = cli_json("commitments")
    [row] = data["commitments"]
    assert (row["id"], row["kind"], row["covers"], row["in_use"]) == (ri, "RI", "m5.large, us-east-1a", "2 of 3 in use")
    assert row["idle_per_hour"] == pytest.approx(0.096 * (1 - 0.37))  # one idle No Upfront RI's hourly charge
    assert sorted(k["instance_id"] for k in data["kept_on_demand"]) == sorted(i["InstanceId"] for i in raw["Instances"])
    assert data["would_return_to_on_demand"] == [] and data["opted_in_on_demand_per_hour"] == {
        "list": pytest.approx(0.192), "commitment_aware": 0}
    out = cli("commitments").stdout
    assert f"kept on-demand: covered by RI {ri[:8]}… (m5.large, us-east-1a, 2 of 3 in use)" in out


def test_status_shows_the_commitment_aware_hourly_cost(aws: EmbeddedAws, make_group) -> None:
    from tests.cli_helpers import cli_json

    make_group("web", desired=2, max_size=4, zones=("a",), extra_tags=POLICY)
    before = cli_json("status")["fleet"]
    assert before["commitment_aware_hourly_cost"] == before["hourly_cost"] == pytest.approx(0.192)
    buy_ri(aws)
    after = cli_json("status")["fleet"]
    assert after["paid_by_commitments_per_hour"] == pytest.approx(0.096)
    assert after["commitment_aware_hourly_cost"] == pytest.approx(0.096)  # one m5.large on-demand paid by the RI


def test_manual_replace_refuses_a_swap_that_would_strand_a_commitment_unless_forced(aws: EmbeddedAws,
                                                                                    make_group) -> None:
    from tests.cli_helpers import cli
    from tests.test_cli_commands import refused_line
    from tests.workflow_helpers import refusal

    raw = make_group("web", desired=2, max_size=4, zones=("a",), extra_tags=POLICY)
    oldest = min(raw["Instances"], key=lambda i: i["InstanceId"])["InstanceId"]
    ri = buy_ri(aws, count=2)  # pays for both on-demand: either swap to spot leaves one RI idle
    why = (f"is paid for by RI {ri[:8]}… (m5.large, us-east-1a, 2 of 2 in use): replacing it would leave "
           "$0.0605/h of it idle")  # a No Upfront m5.large RI: 0.096 x (1 - 0.37) per hour
    assert refused_line(aws, "replace", "--asg", "web", "--instance", oldest) == (
        f"error: instance {oldest} in ASG web {why}; pass --force to replace it anyway (recorded in the execution "
        "input)")
    # the workflow refuses it too, as an outcome: a manual start that skipped the CLI's check changes nothing
    # (named apart from the CLI's own start below, which could otherwise share its name within the same second)
    assert refusal(aws.wait(aws.start_swap("web", oldest, timing=FAST, name=f"web-{oldest}-direct"))) == (
        "CoveredByCommitment", f"instance {oldest} in ASG web {why}")
    assert all(i.get("InstanceLifecycle") != "spot" for i in instances(aws))

    forced = cli("-o", "json", "replace", "--asg", "web", "--instance", oldest, "--force", "--wait", *FAST_TIMING)
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["outcome"] == "swapped" and state_of(aws, oldest) == "terminated"


def test_manual_replace_strands_nothing_when_the_ri_floats_to_another_on_demand(aws: EmbeddedAws,
                                                                                make_group) -> None:
    from tests.cli_helpers import cli

    raw = make_group("web", desired=2, max_size=4, zones=("a",), extra_tags=POLICY)
    buy_ri(aws)  # one RI, two on-demand of its kind: whichever goes, the RI covers the other
    kept = {p["instance_id"] for p in run_scan(aws, dry_run=True)["plan"] if p["action"] == "skip"}
    [covered] = kept  # the one the ledger names as covered
    result = cli("-o", "json", "replace", "--asg", "web", "--instance", covered, "--wait", *FAST_TIMING)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcome"] == "swapped"
    other = next(i["InstanceId"] for i in raw["Instances"] if i["InstanceId"] != covered)
    assert verdicts(run_scan(aws, dry_run=True))[other][0] == "skip"  # the RI now pays for the other one


def test_swap_back_without_on_demand_capacity_cools_the_pool_and_waits_out_the_cooldown(aws: EmbeddedAws,
                                                                                          make_group) -> None:
    """An idle RI, a spot, no on-demand m5.large left in us-east-1a: the swap back ends no-capacity (an outcome,
    SUCCEEDED), the on-demand pool cools in the cooldown table, the next scan starts nothing for it and says so;
    once the cooldown is over (with capacity back) the swap back goes."""
    raw = make_group("web", desired=1, max_size=2, zones=("a",), extra_tags=POLICY)
    first = aws.wait(aws.start_swap("web", raw["Instances"][0]["InstanceId"], timing=FAST))
    spot = json.loads(first["output"])["spot"]["spot_instance_id"]
    ri = buy_ri(aws)
    commitments.reset_cache()
    os.environ.pop("COMMITMENTS", None)
    aws.ec2_model.on_demand_capacity[("m5.large", "us-east-1a")] = 0
    t0 = datetime.now(UTC)
    run_scan(aws, now=t0.isoformat(), timing=FAST)  # the RI is seen idle
    scan2 = run_scan(aws, now=(t0 + timedelta(minutes=16)).isoformat(), timing=FAST)
    assert len(scan2["started"]) == 1 and verdicts(scan2)[spot][0] == "to-on-demand"
    arn = next(e["executionArn"] for e in executions(aws) if e["name"] == scan2["started"][0])
    described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    output = json.loads(described["output"])
    assert output["outcome"] == "no-capacity" and output["why"] == (
        "InsufficientInstanceCapacity: no on-demand m5.large in us-east-1a")
    assert output["cooled_pools"] == ["m5.large in us-east-1a (on-demand)"]
    assert members(aws, "web") == {spot: "InService"} and state_of(aws, spot) == "running"
    table = os.environ["COOLDOWN_TABLE"]
    item = aws.client("dynamodb").get_item(TableName=table, Key={
        "cooldown_key": {"S": "pool#m5.large#us-east-1a#on-demand"}})["Item"]
    assert item["reason"]["S"] == "no-capacity" and item["source"]["S"] == described["name"]
    until = int(item["expires_at"]["N"])
    assert until - t0.timestamp() == pytest.approx(30 * 60, abs=120)  # the spot pools' TTL, from the launch
    assert "Item" not in aws.client("dynamodb").get_item(TableName=table, Key={  # no spot pool was cooled
        "cooldown_key": {"S": "pool#m5.large#us-east-1a"}})
    scan3 = run_scan(aws, now=(t0 + timedelta(minutes=20)).isoformat(), timing=FAST)
    assert scan3["started"] == [] and verdicts(scan3)[spot] == (
        "skip", "stays spot for now: on-demand m5.large in us-east-1a is cooling down after no on-demand capacity")
    assert scan3["idle_commitment_per_hour"] > 0 and ri
    aws.ec2_model.on_demand_capacity.pop(("m5.large", "us-east-1a"))
    after = datetime.fromtimestamp(until + 1, UTC)
    with InvariantChecker(["web"], watch_spots=True) as watch:
        scan4 = run_scan(aws, now=after.isoformat(), timing=FAST)
        assert len(scan4["started"]) == 1 and verdicts(scan4)[spot][0] == "to-on-demand"
        arn = next(e["executionArn"] for e in executions(aws) if e["name"] == scan4["started"][0])
        described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    new_id = json.loads(described["output"])["spot"]["spot_instance_id"]
    assert "InstanceLifecycle" not in instances(aws, instance_id=new_id)[0] and state_of(aws, spot) == "terminated"
    assert watch.finish() == []


def test_manual_swap_reads_no_group_when_no_commitment_could_cover_the_instance(aws: EmbeddedAws,
                                                                                 make_group) -> None:
    """Validate's commitment check reads the commitments (kept by the container) first, and the fleet (every
    opted-in group, the region's usage) only when one of them could pay for this instance at all."""
    from tasks.aws.instances import instances_by_id
    from tests.test_scan import counted_calls

    raw = make_group("web", desired=2, max_size=4, zones=("a",), extra_tags=POLICY)
    instance_id = raw["Instances"][0]["InstanceId"]
    instance = instances_by_id([instance_id])[instance_id]
    buy_ri(aws, zone="us-east-1b")  # an m5.large RI of another zone: it cannot pay for an instance in us-east-1a
    with counted_calls() as calls:
        assert commitments.manual_swap_strands(instance) is None
    assert dict(calls) == {"ec2.DescribeReservedInstances": 1, "savingsplans.DescribeSavingsPlans": 1}
    buy_ri(aws, count=2)  # one that pays for both: the fleet is read, and the verdict is the full one
    commitments.reset_cache()
    with counted_calls() as calls:
        assert (commitments.manual_swap_strands(instance) or "").startswith("paid for by RI ")
    assert calls["auto-scaling.DescribeAutoScalingGroups"] >= 1 and calls["ec2.DescribeInstances"] >= 1
