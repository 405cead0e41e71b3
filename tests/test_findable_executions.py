"""Issue 17 item 8: every execution is findable. Interruption fallbacks (their own state machine) and rebalance
swaps appear in `executions`, `show` and `status`'s last activity, and `executions --asg` still lists a group's
executions after the group is deleted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.events import emit, interrupt, spot_event
from asg_optimizer.local.group_builder import GroupSpec, attach_spot, create_group, create_network
from asg_optimizer.timeline import FALLBACK, NOTHING_TO_REPLACE, REPLACED, SWAP, kind_of, outcome_of
from stack.description import INTERRUPTION, REPLACE
from tests.cli_helpers import cli, cli_json, flat, table_row


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide enough that `status` cuts no cell these tests read (test_fleet_status tests the cutting)."""
    monkeypatch.setenv("COLUMNS", "200")


def arn_of(aws: EmbeddedAws, machine: str, name: str) -> str:
    return aws.deployment.state_machine_arns[machine].replace(":stateMachine:", ":execution:") + f":{name}"


def test_kind_and_outcome_of_a_fallback() -> None:
    fallback = "arn:aws:states:us-east-1:123456789012:execution:asg-optimizer-spot-interruption:web-i-0a1b2c3d-x"
    swap = "arn:aws:states:us-east-1:123456789012:execution:asg-optimizer-replace-instance:web-i-0a1b2c3d-x"
    assert (kind_of(fallback), kind_of(swap), kind_of("not-an-arn")) == (FALLBACK, SWAP, SWAP)
    assert outcome_of("SUCCEEDED", {"raised": True}, FALLBACK) == REPLACED
    assert outcome_of("SUCCEEDED", {"raised": False, "why": "gone"}, FALLBACK) == NOTHING_TO_REPLACE
    assert outcome_of("FAILED", {}, FALLBACK) == "FAILED"
    assert outcome_of("SUCCEEDED", {"raised": True}) == "swapped"  # a swap's output is read as a swap's


def test_fallbacks_and_rebalance_swaps_are_listed_shown_and_last_in_status(market_aws: EmbeddedAws) -> None:
    aws = market_aws
    network = create_network()
    # AllowedTypes m5.large: the rebalance cools the spot's only pool, so its swap ends no-capacity at once
    raw = create_group(network, GroupSpec("web", desired=1, max_size=2, zones=("a",),
                                          extra_tags={"AsgOptimiser:AllowedTypes": "m5.large"}))
    spot = attach_spot(network, raw)
    rebalance = interrupt(aws, spot, rebalance=True).results["spot-rebalance"]["execution_name"]
    assert aws.wait(arn_of(aws, REPLACE, rebalance), timeout=60)["status"] == "SUCCEEDED"
    # the warning a few seconds later (its own name: executions are named from the event's time)
    warned = datetime.now(UTC) + timedelta(seconds=3)
    fallback = emit(aws, spot_event(spot, "us-east-1a", at=warned)).results["spot-interruption"]["execution_name"]
    described = aws.wait(arn_of(aws, INTERRUPTION, fallback), timeout=30)
    assert described["status"] == "SUCCEEDED", described.get("cause")

    rows = cli_json("executions")["executions"]
    assert [(r["name"], r["kind"], r["trigger"], r["outcome"]) for r in rows] == [
        (fallback, FALLBACK, "interruption", REPLACED), (rebalance, SWAP, "rebalance", "no-capacity")]
    assert (rows[0]["asg_name"], rows[0]["instance_id"], rows[0]["arn"]) == (
        "web", spot, arn_of(aws, INTERRUPTION, fallback))
    table = cli("executions").stdout
    assert table_row(table, fallback)[1:3] == ["interruption", "SUCCEEDED (replaced)"]
    assert table_row(table, rebalance)[1:3] == ["rebalance", "SUCCEEDED (no-capacity)"]
    assert [r["name"] for r in cli_json("executions", "--status", "SUCCEEDED", "--asg", "web")["executions"]] == [
        fallback, rebalance]

    shown = cli("show", fallback)
    assert shown.exit_code == 0, shown.output
    out = flat(shown.stdout)
    assert f"ASG web, instance {spot}, reason interruption" in out
    assert f"{fallback}: SUCCEEDED (replaced)" in out
    assert "Path: RaiseCapacity → Raised → ReleaseSpot" in out
    assert "Fallback done in" in out and f"spot {spot} warned, on-demand capacity in (desired raised to 3" in out
    data = cli_json("show", fallback)
    assert (data["kind"], data["outcome"], data["arn"]) == (FALLBACK, REPLACED, arn_of(aws, INTERRUPTION, fallback))
    assert cli_json("show", rebalance)["input"]["reason"] == "rebalance"

    last = cli_json("status")["groups"][0]["last_swap"]
    assert (last["name"], last["kind"], last["trigger"], last["outcome"]) == (fallback, FALLBACK, "interruption",
                                                                              REPLACED)
    assert table_row(cli("status").stdout, "web")[6].startswith("interruption SUCCEEDED (replaced)")

    # the group goes away; its history does not
    aws.client("autoscaling").delete_auto_scaling_group(AutoScalingGroupName="web", ForceDelete=True)
    gone = cli("-o", "json", "executions", "--asg", "web")
    assert gone.exit_code == 0, gone.output
    assert [r["name"] for r in json.loads(gone.stdout)["executions"]] == [fallback, rebalance]
    missing = cli("executions", "--asg", "never-was")
    assert (missing.exit_code, missing.stdout, missing.stderr.strip()) == (
        2, "", "error: ASG never-was does not exist in us-east-1 and no execution of it matches")
