"""Every CLI command, table and JSON, driven in-process against the embedded AWS (moto with the stack deployed):
the CLI's own boto3 session reaches it with no endpoint, as it would reach an account.

Every execution that reaches LaunchSpot costs seconds in the embedded AWS, so only three tests run one (a swap
watched with --wait, a swap with no spot capacity, a forced swap); the others make their executions end early on
purpose: Validate refuses them (an instance in no group, or one protected meanwhile), or they wait in their start
delay (running, nothing touched yet).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.timeline import console_url, outcome_of
from tasks.aws.prices import snapshot
from tasks.core.prices import LINUX, snapshot_price
from tasks.core.timing import parse_timing
from tests.cli_helpers import FAST_TIMING, cli, cli_json, flat, table_row
from tests.cli_helpers import snapshot as aws_state
from tests.conftest import FAST
from tests.workflow_helpers import (
    group,
    hold,
    holders,
    instances,
    launched_by,
    members,
    refusal,
    settings,
    state_of,
    states_entered,
    wait_for_state,
)

# AllowedTypes pins the spot to m5.large, so "no capacity for m5.large" means no capacity at all.
POLICY_TAGS = {"AsgOptimiser:MinOnDemand": "1", "AsgOptimiser:MaxParallel": "2",
               "AsgOptimiser:AllowedTypes": "m5.large"}
M5_LARGE = snapshot_price(snapshot(), "us-east-1", "m5.large", LINUX)
STRANGER = "i-0123456789abcdef0"  # in no group: Validate refuses it at once


@pytest.fixture
def fleet(aws: EmbeddedAws, make_group) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """web (opted in, policy tags) and legacy (not opted in); spots boot in 0.2 s, so one 1 s poll finds them ready."""
    aws.ec2_model.boot_delay_seconds = 0.2
    web = make_group("web", desired=2, max_size=4, extra_tags=POLICY_TAGS)
    legacy = make_group("legacy", desired=1, max_size=2, opted_in=False)
    return {"web": [i["InstanceId"] for i in web["Instances"]],
            "legacy": [i["InstanceId"] for i in legacy["Instances"]]}


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide enough that `status` cuts no cell these tests read (test_fleet_status tests the cutting)."""
    monkeypatch.setenv("COLUMNS", "200")


def make_older(instance_id: str, hours: int) -> None:
    """Back-date an instance's launch (moto launches everything 'now')."""
    instance = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_instance(instance_id)
    instance.launch_time = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def swapped(aws: EmbeddedAws, asg: str, instance_id: str) -> dict[str, Any]:
    described = aws.wait(aws.start_swap(asg, instance_id, timing=FAST))
    assert outcome_of(described["status"], json.loads(described.get("output") or "{}")) == "swapped", described
    return described


def refused(aws: EmbeddedAws, asg: str = "web") -> dict[str, Any]:
    described = aws.wait(aws.start_swap(asg, STRANGER, timing=FAST))
    assert refusal(described)[0] == "InstanceNotEligible"
    return described


def no_capacity(aws: EmbeddedAws) -> None:
    for zone in ("us-east-1a", "us-east-1b"):
        aws.ec2_model.spot_capacity[("m5.large", zone)] = 0


def spot_instances(aws: EmbeddedAws) -> list[str]:
    return [i["InstanceId"] for i in instances(aws) if i.get("InstanceLifecycle") == "spot"]


# --- plan -------------------------------------------------------------------------------------------------------

def test_plan_is_the_scanners_dry_run_and_changes_nothing(aws: EmbeddedAws, fleet) -> None:
    make_older(fleet["web"][1], hours=3)
    before = aws_state(aws)
    data = cli_json("plan", "--asg", "web", "--asg", "legacy")
    assert data["dry_run"] is True and data["started"] == []
    # MinOnDemand 1 of 2: only one may go, the older one
    assert sorted((v["instance_id"], v["action"]) for v in data["plan"]) == sorted(
        [(fleet["web"][1], "replace"), (fleet["web"][0], "skip")])
    floor = next(v["why"] for v in data["plan"] if v["action"] == "skip")
    assert floor.startswith("on-demand floor") and "MinOnDemand 1" in floor
    assert data["skipped_groups"] == [
        {"asg_name": "legacy", "why": "not opted in: tag AsgOptimiser is missing, expected 'true'"}]

    table = cli("plan", "--asg", "web", "--asg", "legacy")
    assert table.exit_code == 0
    assert table_row(table.stdout, "web")[1:3] == [fleet["web"][1], "replace"]  # the pick is listed first
    assert re.search(rf"│ web\s+│ {fleet['web'][0]} │ skip\s+│ on-demand floor", table.stdout)
    assert table_row(table.stdout, "legacy") == ["legacy", "not opted in: tag AsgOptimiser is missing, expected 'true'"]
    assert "2 groups scanned: 1 instance would be replaced, 1 left alone, 1 group left alone. Nothing was changed." \
        in flat(table.stdout)
    assert aws_state(aws) == before


# --- a swap end to end: replace --wait, show, status -----------------------------------------------------------

@pytest.mark.long
def test_replace_wait_then_show_and_status(aws: EmbeddedAws, fleet) -> None:
    oldest = fleet["web"][1]
    make_older(oldest, hours=5)
    aws.ec2_model.boot_status_reads = 1  # at least two status-check polls, however fast the machine
    before = settings(aws, "web")
    result = cli("replace", "--asg", "web", "--wait", *FAST_TIMING)

    assert result.exit_code == 0, result.output
    started = re.search(r"Started (\S+): replacing (\S+) in ASG web", result.stdout)
    assert started and started.group(2) == oldest  # no --instance: the oldest on-demand
    name = started.group(1)
    arn = f"{aws.deployment.replace_arn.replace(':stateMachine:', ':execution:')}:{name}"
    assert f"Console: {console_url('us-east-1', arn)}" in result.stdout
    assert f"{name}: SUCCEEDED" in result.stdout
    spot = launched_by(aws, name)[0]["InstanceId"]
    assert "Swapped in " in result.stdout and f"{oldest} replaced by spot {spot}" in flat(result.stdout)
    assert re.search(r"\(WaitForBoot → CheckSpot → SpotReady\) x\d → AttachSpot", flat(result.stdout))
    assert table_row(result.stdout, "1")[1] == "HasStartDelay"
    progress = [line.split()[1] for line in result.stdout.splitlines() if re.match(r"  \+[\d.ms]+ \w+", line)]
    assert progress == states_entered(aws, arn)  # not a terminal: one line per state entered, none missed
    assert state_of(aws, oldest) == "terminated"
    assert members(aws, "web") == {fleet["web"][0]: "InService", spot: "InService"}
    assert settings(aws, "web") == before

    shown = cli_json("show", name)
    assert (shown["status"], shown["outcome"], shown["error"], shown["failed_in"]) == ("SUCCEEDED", "swapped", None,
                                                                                      None)
    assert shown["input"] == {"asg_name": "web", "instance_id": oldest, "reason": "manual",
                              "timing": parse_timing(FAST).flat()}
    assert [s["state"] for s in shown["steps"]] == states_entered(aws, arn)
    assert [s["visit"] for s in shown["steps"] if s["state"] == "CheckSpot"][:2] == [1, 2]
    assert all(s["seconds"] >= 0 and not s["running"] for s in shown["steps"])
    assert shown["output"]["spot"]["spot_instance_id"] == spot

    waiting = aws.start_swap("web", STRANGER, timing={"start_delay_seconds": 3600})  # in flight however slow
    wait_for_state(aws, waiting, "StartDelay")
    table, data = cli("status"), cli_json("status")
    aws.client("stepfunctions").stop_execution(executionArn=waiting)
    assert table.exit_code == 0, table.output
    cells = table_row(table.stdout, "web")
    assert cells[:4] == ["web", "2 (0-4)", "1", "1"]
    assert cells[4] == "keep 1 od, 2 at once, m5.large"
    assert cells[5] == "1"  # the swap waiting in its start delay
    assert re.fullmatch(r"manual SUCCEEDED \d+s ago", cells[6])
    assert re.fullmatch(r"\$0\.\d{4}", cells[7]) and re.fullmatch(r"\$0\.\d{4}", cells[8])
    assert table_row(table.stdout, "1 group")[1:6] == ["2", "1", "1", "", "1"]
    assert "│ legacy" not in table.stdout  # not opted in: not listed
    assert "on-demand prices from the bundled snapshot of" in flat(table.stdout)

    assert [g["asg_name"] for g in data["groups"]] == ["web"]
    web = data["groups"][0]
    assert (web["desired"], web["min_size"], web["max_size"], web["on_demand"], web["spot"]) == (2, 0, 4, 1, 1)
    assert web["policy"] == {"min_on_demand": 1, "min_on_demand_percent": 0, "on_demand_floor": 1, "max_parallel": 2,
                             "grace_period": 0, "allowed_types": ["m5.large"], "denied_types": [], "window": None}
    assert web["in_flight"] == [waiting.rsplit(":", 1)[-1]]
    assert (web["last_swap"]["name"], web["last_swap"]["outcome"]) == (name, "swapped")
    assert datetime.fromisoformat(web["last_swap"]["stopped"]) <= datetime.now(UTC)
    # one on-demand at its on-demand price plus one spot at the market price: cost + saving = 2 x on-demand
    assert web["hourly_cost"] + web["hourly_saving"] == pytest.approx(2 * M5_LARGE, abs=1e-4)
    assert 0 < web["hourly_saving"] < M5_LARGE and web["unpriced"] == []
    assert data["fleet"] == {"groups": 1, "on_demand": 1, "spot": 1, "in_flight": 1,
                             "hourly_cost": web["hourly_cost"], "hourly_saving": web["hourly_saving"], "unpriced": {},
                             "commitment_aware_hourly_cost": web["hourly_cost"], "paid_by_commitments_per_hour": 0.0}


# --- no spot capacity: replace --wait, executions, status -------------------------------------------------------

def test_no_spot_capacity_exits_1_and_reads_as_not_swapped(aws: EmbeddedAws, fleet, make_group) -> None:
    make_group("api", desired=1, max_size=2)
    failed = refused(aws, "api")["name"]
    no_capacity(aws)
    before = aws_state(aws)
    result = cli("replace", "--asg", "web", "--instance", fleet["web"][0], "--wait", *FAST_TIMING)

    assert result.exit_code == 1, result.output
    nothing = re.search(r"Started (\S+):", result.stdout).group(1)  # type: ignore[union-attr]
    assert f"{nothing}: SUCCEEDED (no-capacity)" in result.stdout
    assert re.search(r"Not swapped \(no-capacity\) after [\d.]+s: no spot capacity", flat(result.stdout))
    after = aws_state(aws)
    assert spot_instances(aws) == []  # nothing launched
    assert after["groups"] == before["groups"] and after["instances"] == before["instances"]

    rows = cli_json("executions")["executions"]
    assert [r["name"] for r in rows] == [nothing, failed]
    assert (rows[0]["status"], rows[0]["outcome"], rows[0]["error"]) == ("SUCCEEDED", "no-capacity", None)
    assert (rows[1]["status"], rows[1]["outcome"], rows[1]["error"]) == ("SUCCEEDED", "refused", None)
    assert rows[1]["why"] == f"InstanceNotEligible: instance {STRANGER} is not a member of ASG api"
    assert rows[1]["console_url"] == console_url("us-east-1", rows[1]["arn"])
    assert datetime.fromisoformat(rows[1]["started"]) < datetime.fromisoformat(rows[0]["started"])
    assert [r["name"] for r in cli_json("executions", "--asg", "api")["executions"]] == [failed]
    assert cli_json("executions", "--status", "failed")["executions"] == []  # a refusal is not a failure
    assert [r["name"] for r in cli_json("executions", "--since", "1h", "--limit", "1")["executions"]] == [nothing]

    table = cli("executions").stdout
    assert table_row(table, nothing)[1:3] == ["manual", "SUCCEEDED (no-capacity)"]
    failed_row = table_row(table, failed)
    assert failed_row[2] == "SUCCEEDED (refused)" and re.fullmatch(r"\d+s ago", failed_row[3])
    assert failed_row[5] == f"InstanceNotEligible: instance {STRANGER} is not a member of ASG api"
    assert table.index(nothing) < table.index(failed)
    assert "No executions match." in cli("executions", "--status", "RUNNING").stdout

    status = {g["asg_name"]: g for g in cli_json("status")["groups"]}
    assert (status["web"]["last_swap"]["status"], status["web"]["last_swap"]["outcome"]) == ("SUCCEEDED",
                                                                                          "no-capacity")
    assert (status["api"]["last_swap"]["outcome"], status["api"]["last_swap"]["reason"]) == ("refused",
                                                                                             "InstanceNotEligible")
    status_table = cli("status").stdout
    assert table_row(status_table, "web")[6].startswith("manual SUCCEEDED (no-capacity) ")
    assert table_row(status_table, "api")[6].startswith("manual SUCCEEDED (refused) InstanceNotEligible ")


def test_status_names_a_malformed_policy_instead_of_guessing(aws: EmbeddedAws, make_group) -> None:
    make_group("typo", desired=1, max_size=2, extra_tags={"AsgOptimiser:MaxParallel": "two"})
    typo = cli_json("status")["groups"][0]
    assert typo["policy"] is None
    assert typo["policy_error"] == (
        "ASG typo: tag AsgOptimiser:MaxParallel='two' is malformed: expected a whole number 1 or more")
    table = cli("status").stdout
    assert table_row(table, "typo")[4] == "malformed policy: AsgOptimiser:MaxParallel='two'"
    assert f"typo: {typo['policy_error']}" in flat(table)  # the whole message below the table


def test_replace_without_wait_starts_one_named_execution(aws: EmbeddedAws, fleet) -> None:
    target = fleet["web"][0]
    result = cli("-o", "json", "replace", "--asg", "web", "--instance", target, "--timing", "start_delay_seconds=1")
    assert result.exit_code == 0, result.output
    started = json.loads(result.stdout)
    assert re.fullmatch(rf"web-{target}-\d{{8}}T\d{{6}}", started["name"])
    assert (started["asg_name"], started["instance_id"], started["status"]) == ("web", target, "RUNNING")
    assert started["console_url"] == console_url("us-east-1", started["execution_arn"])
    # protected while it waits: Validate refuses it, so the test ends without a swap
    aws.client("autoscaling").set_instance_protection(AutoScalingGroupName="web", InstanceIds=[target],
                                                      ProtectedFromScaleIn=True)
    described = aws.wait(started["execution_arn"])
    assert refusal(described)[0] == "InstanceNotEligible"
    assert json.loads(described["input"])["timing"]["start_delay_seconds"] == 1


def refused_line(aws: EmbeddedAws, *args: str) -> str:
    """A command that must be refused: one line on stderr, exit 2, AWS unchanged."""
    before = aws_state(aws)
    result = cli(*args)
    assert (result.exit_code, result.stdout, len(result.stderr.splitlines())) == (2, "", 1), result.output
    assert aws_state(aws) == before
    return result.stderr.strip()


def test_replace_respects_the_on_demand_floor_unless_forced_and_status_marks_the_group(aws: EmbeddedAws,
                                                                                       fleet) -> None:
    first, second = fleet["web"]
    swapped(aws, "web", first)  # MinOnDemand=1 of desired 2: one swap is allowed, the second would break the floor
    assert refused_line(aws, "replace", "--asg", "web") == (
        "error: ASG web keeps 1 on-demand (AsgOptimiser:MinOnDemand=1, AsgOptimiser:MinOnDemandPercent=0 of desired "
        f"2) and has 1 not being replaced: replacing {second} would leave 0; pass --force to replace it anyway "
        "(recorded in the execution input)")
    # the workflow refuses it too, as an outcome: a manual start that skipped the CLI's check changes nothing
    # (named apart from the CLI's own start below, which would otherwise share its name within the same second)
    direct = aws.start_swap("web", second, timing=FAST, name=f"web-{second}-direct")
    assert refusal(aws.wait(direct))[0] == "OnDemandFloor"
    assert cli_json("status")["groups"][0]["below_floor"] is False

    result = cli("-o", "json", "replace", "--asg", "web", "--force", "--wait", *FAST_TIMING)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["status"], data["outcome"], data["input"]["force"]) == ("SUCCEEDED", "swapped", True)
    assert state_of(aws, second) == "terminated"

    web = cli_json("status")["groups"][0]
    assert (web["on_demand"], web["policy"]["on_demand_floor"], web["below_floor"]) == (0, 1, True)
    assert table_row(cli("status").stdout, "web")[4] == "BELOW FLOOR 0/1; keep 1 od, 2 at once, m5.large"


def test_replace_respects_the_window_unless_forced(aws: EmbeddedAws, make_group) -> None:
    hour = datetime.now(UTC).hour
    window = f"{(hour + 2) % 24:02d}-{(hour + 3) % 24:02d}"  # two hours ahead: cannot open while the test runs
    raw = make_group("night", desired=1, max_size=2, extra_tags={"AsgOptimiser:Window": window})
    line = refused_line(aws, "replace", "--asg", "night")
    assert re.fullmatch(rf"error: ASG night is outside its window: AsgOptimiser:Window='{window}' allows {window} UTC, "
                        r"now \d\d:\d\d UTC; pass --force to replace it anyway \(recorded in the execution input\)",
                        line), line
    only = raw["Instances"][0]["InstanceId"]
    reason, why = refusal(aws.wait(aws.start_swap("night", only, timing=FAST)))
    assert reason == "OutsideWindow" and why.startswith("ASG night is outside its window: AsgOptimiser:Window=")


# --- executions and show ----------------------------------------------------------------------------------------

def test_show_a_refused_execution(aws: EmbeddedAws, fleet) -> None:
    described = refused(aws)
    name, arn = described["name"], described["executionArn"]

    by_name = cli("show", name)
    assert by_name.exit_code == 0, by_name.output
    out = by_name.stdout
    assert f"ASG web, instance {STRANGER}, reason manual; started" in out
    assert f"{name}: SUCCEEDED (refused)" in out
    assert table_row(out, "2")[1] == "Validate" and table_row(out, "2")[4] == "InstanceNotEligible"
    assert "Path: HasStartDelay → Validate → ReadRefusal → Refused" in out
    assert re.search(rf"Not swapped \(refused\) after [\d.]+s: InstanceNotEligible: instance {STRANGER} is not a "
                     "member of ASG web", flat(out))
    assert "stackTrace" not in out  # the Lambda error JSON is read, not dumped
    assert f"Console: {console_url('us-east-1', arn)}" in out
    assert cli("show", arn).stdout.splitlines()[1:] == out.splitlines()[1:]  # by ARN: the same (but "ago")

    data = cli_json("show", arn)
    assert (data["status"], data["outcome"], data["error"], data["failed_in"]) == ("SUCCEEDED", "refused", None, None)
    assert data["output"] == {"outcome": "refused", "reason": "InstanceNotEligible",
                              "why": f"instance {STRANGER} is not a member of ASG web"}
    assert data["path"] == "HasStartDelay → Validate → ReadRefusal → Refused"
    assert [(s["state"], s["error"]) for s in data["steps"]] == [
        ("HasStartDelay", None), ("Validate", "InstanceNotEligible"), ("ReadRefusal", None), ("Refused", None)]


def test_show_a_running_execution(aws: EmbeddedAws, fleet) -> None:
    # Held in StartDelay for as long as the test needs (no race between the delay and a slow machine), then stopped.
    arn = aws.start_swap("web", STRANGER, timing={"start_delay_seconds": 3600})
    try:
        wait_for_state(aws, arn, "StartDelay")
        data = cli_json("show", arn)
        out = cli("show", arn).stdout
    finally:
        aws.client("stepfunctions").stop_execution(executionArn=arn)
        aws.wait(arn)
    assert (data["status"], data["outcome"], data["stopped"]) == ("RUNNING", "RUNNING", None)
    assert (data["steps"][-1]["state"], data["steps"][-1]["running"]) == ("StartDelay", True)
    assert "RUNNING for" in out and "now in StartDelay" in out
    row = table_row(out, "2")
    assert row[1] == "StartDelay" and row[4] == "running"


# --- sweep ------------------------------------------------------------------------------------------------------

def test_sweep_repairs_a_group_a_crashed_swap_left_held(aws: EmbeddedAws, fleet) -> None:
    crashed = f"web-{fleet['web'][0]}-20260101T000000"
    max_size = group(aws, "web")["MaxSize"]
    aws.client("autoscaling").update_auto_scaling_group(AutoScalingGroupName="web", DesiredCapacity=max_size)
    hold(aws, "web", crashed)  # full: a MaxSize slot and AZRebalance suspended, recorded in the group's record
    assert group(aws, "web")["MaxSize"] == max_size + 1

    result = cli("sweep")
    assert result.exit_code == 0, result.output
    assert (f"- repaired web: gave back the holds of {crashed}; MaxSize back to {max_size}; resumed AZRebalance"
            in result.stdout)
    assert "0 orphaned spot instances terminated, 1 group repaired." in result.stdout
    g = group(aws, "web")
    assert g["MaxSize"] == max_size and g["SuspendedProcesses"] == []
    assert holders(aws, "web") == []

    assert cli_json("sweep") == {"terminated": [], "repaired": [], "actions": [], "left": []}
    assert "Nothing to do" in cli("sweep").stdout
