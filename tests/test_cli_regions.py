"""Several regions through `local serve` (issue 17 item 6, the CLI): moto serves every region of its account, the
server deploys the stack into each --region, and this CLI merges status, plan and executions with a region column
(`--region` several times, or `--all-regions`); one-region commands refuse a second --region. Also `-o csv` for
status, plan and executions (one header row, one row per group, instance or execution), refused elsewhere."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import FAST_TIMING, cli, flat
from tests.test_cli_local_serve import Served, serve

REGIONS = ("us-east-1", "eu-west-1")
BOTH = ("--region", REGIONS[0], "--region", REGIONS[1])
pytestmark = pytest.mark.long  # a two-region server process for the module: run early


@pytest.fixture(scope="module")
def two() -> Iterator[Served]:
    with serve("--demo-fleet", "--boot-delay", "0.5", regions=REGIONS) as server:
        yield server


@pytest.fixture
def local(two: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Served:
    for name in [k for k in __import__("os").environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", two.endpoint)
    return two


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_serve_deploys_the_stack_and_the_demo_fleet_in_every_region(two: Served) -> None:
    printed = "\n".join(two.seen)
    assert f"asg-optimizer local AWS on {two.endpoint} (region us-east-1, eu-west-1), stack deployed:" in printed
    for region in REGIONS:
        assert (f"state machine  arn:aws:states:{region}:123456789012:stateMachine:asg-optimizer-replace-instance"
                in printed)
        assert f"legacy-db (2 on-demand, not opted in) in {region}" in printed
    assert f"asg-optimizer --endpoint-url {two.endpoint} --region us-east-1 --region eu-west-1 status" in printed


def test_status_plan_and_executions_merge_the_regions(local: Served) -> None:
    swapped = cli("--region", "eu-west-1", "replace", "--asg", "workers", "--wait", *FAST_TIMING)
    assert swapped.exit_code == 0, swapped.output
    name = re.search(r"Started (\S+):", swapped.stdout).group(1)  # type: ignore[union-attr]
    spot = re.search(r"replaced by spot (i-[0-9a-f]+)", flat(swapped.stdout)).group(1)  # type: ignore[union-attr]

    data = json.loads(cli("-o", "json", *BOTH, "status").stdout)
    assert data["regions"] == list(REGIONS) and data["paused"] == dict.fromkeys(REGIONS)
    groups = {(g["region"], g["asg_name"]): g for g in data["groups"]}
    assert sorted(groups) == sorted((r, n) for r in REGIONS for n in ("web", "workers"))
    assert (groups["eu-west-1", "workers"]["spot"], groups["us-east-1", "workers"]["spot"]) == (1, 0)
    assert groups["eu-west-1", "workers"]["last_swap"]["name"] == name
    assert data["fleet"]["groups"] == 4 and data["fleet"]["unpriced"] == {}  # the eu-west-1 spot is priced too
    table = cli("--region", "us-east-1", "--region", "eu-west-1", "status")
    assert table.exit_code == 0, table.output
    assert "Opted-in Auto Scaling groups in us-east-1, eu-west-1" in table.stdout
    rows = [line.split("│")[1:3] for line in table.stdout.splitlines() if line.startswith("│ w")]
    assert [(a.strip(), b.strip()) for a, b in rows] == [
        ("web", "eu-west-1"), ("web", "us-east-1"), ("workers", "eu-west-1"), ("workers", "us-east-1")]

    listed = json.loads(cli("-o", "json", *BOTH, "executions").stdout)
    assert listed["regions"] == list(REGIONS)
    assert [(e["region"], e["name"]) for e in listed["executions"]] == [("eu-west-1", name)]
    assert "│ eu-west-1 │ manual" in cli(*BOTH, "executions").stdout
    alone = json.loads(cli("-o", "json", "--region", "us-east-1", "executions").stdout)
    assert alone == {"executions": []}  # one region: as ever, no region field

    planned = json.loads(cli("-o", "json", *BOTH, "plan").stdout)
    verdicts = {(v["region"], v["instance_id"]): v["action"] for v in planned["plan"]}
    assert verdicts[("eu-west-1", spot)] == "skip" and planned["groups_scanned"] == 4
    assert {r for r, _ in verdicts} == set(REGIONS) and set(planned["by_region"]) == set(REGIONS)
    only_web = json.loads(cli("-o", "json", *BOTH, "plan", "--asg", "web").stdout)
    assert {(v["region"], v["asg_name"]) for v in only_web["plan"]} == {(r, "web") for r in REGIONS}
    missing = cli(*BOTH, "plan", "--asg", "nope-*")
    assert (missing.exit_code, missing.stderr) == (2, "error: --asg 'nope-*' matches no ASG in us-east-1, eu-west-1\n")

    csv_rows = _csv(cli("-o", "csv", *BOTH, "executions").stdout)
    assert [(r["region"], r["name"], r["outcome"]) for r in csv_rows] == [("eu-west-1", name, "swapped")]
    status_rows = _csv(cli("-o", "csv", *BOTH, "status").stdout)
    assert [(r["region"], r["asg_name"], r["spot"]) for r in status_rows] == [
        ("eu-west-1", "web", "0"), ("us-east-1", "web", "0"), ("eu-west-1", "workers", "1"),
        ("us-east-1", "workers", "0")]
    plan_rows = _csv(cli("-o", "csv", *BOTH, "plan").stdout)
    assert len(plan_rows) == len(planned["plan"]) + len(planned["skipped_groups"])
    assert {r["region"] for r in plan_rows} == set(REGIONS)


def test_all_regions_reads_the_regions_where_the_stack_is(local: Served) -> None:
    result = cli("-o", "json", "status", "--all-regions")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["regions"] == sorted(REGIONS)
    assert re.fullmatch(r"note: the stack is deployed in 2 of \d+ enabled regions: eu-west-1, us-east-1\n",
                        result.stderr), result.stderr
    both = cli("--region", "us-east-1", "--region", "eu-west-1", "executions", "--all-regions")
    assert (both.exit_code, both.stderr) == (2, "error: --all-regions and several --region: give one or the other\n")
    away = cli("--region", "us-east-1", "--region", "us-west-2", "status")
    assert (away.exit_code, away.stderr) == (
        2, "error: no deployed state machine asg-optimizer-replace-instance in us-west-2: deploy the stack (`pulumi "
           "up`, see README), pass --region or --prefix to find yours, or point at one with --state-machine-arn\n")


@pytest.mark.parametrize("command", [["replace", "--asg", "web"], ["show", "x"], ["sweep"], ["pause", "--why", "x"],
                                     ["rollout", "status", "--asg", "web"]])
def test_one_region_commands_refuse_a_second_region(local: Served, command: list[str]) -> None:
    refused = cli(*BOTH, *command)
    assert (refused.exit_code, refused.stderr) == (
        2, f"error: --region given 2 times (us-east-1, eu-west-1): `{command[0]}` works in one region; only assess, "
           "status, plan, executions and local serve take several\n")


@pytest.mark.parametrize("command", [["show", "x"], ["replace", "--asg", "web"], ["sweep"], ["demo"]])
def test_csv_is_refused_where_there_are_no_rows(local: Served, command: list[str]) -> None:
    refused = cli("-o", "csv", *command)
    assert (refused.exit_code, refused.stderr) == (
        2, f"error: -o csv: `{command[0]}` prints no rows to put in CSV; use -o table or -o json (csv: assess, "
           "status, plan, executions)\n")


def test_csv_of_one_region_has_one_header_and_one_row_per_group(local: Served) -> None:
    result = cli("-o", "csv", "--region", "us-east-1", "status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("region,asg_name,desired,min_size,max_size,on_demand,spot,below_floor,policy,")
    assert [r["asg_name"] for r in _csv(result.stdout)] == ["web", "workers"]
    assert {r["region"] for r in _csv(result.stdout)} == {"us-east-1"}


def test_interrupt_takes_the_spots_one_region(local: Served) -> None:
    refused = cli(*BOTH, "local", "interrupt", "i-0123456789abcdef0")
    assert (refused.exit_code, refused.stderr) == (
        2, "error: --region given 2 times (us-east-1, eu-west-1): local interrupt sends one event, in the spot's "
           "region: give that one\n")
