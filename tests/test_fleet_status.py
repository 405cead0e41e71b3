"""Issue 17 item 7: `status` and `plan` at hundreds of groups. One line per group (a compact policy), totals first,
`--asg` shell patterns, `--sort saving|name|on-demand`; widths follow COLUMNS and a long ASG name never squeezes
the numbers; the fleet plan is one line per group, `plan --asg` keeps one line per instance."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from asg_optimizer.commands.status import compact_policy
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import Network, attach_spot
from tasks.core.policy import parse_policy
from tests.cli_helpers import cli, cli_json, table_row
from tests.cli_helpers import snapshot as aws_state

LONG = "payments-api-production-eu-central-1-blue-green-canary-2026-with-a-name-this-long"


@pytest.fixture
def fleet(aws: EmbeddedAws, network: Network, make_group) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """web-a: 3 on-demand; web-b: 1 on-demand + 2 spot (the biggest saving); LONG: 2 on-demand; batch: 1;
    legacy: not opted in."""
    groups = {
        "web-a": make_group("web-a", desired=3, max_size=4, extra_tags={"AsgOptimiser:MinOnDemand": "1"}),
        "web-b": make_group("web-b", desired=1, max_size=4),
        LONG: make_group(LONG, desired=2, max_size=3, extra_tags={"AsgOptimiser:Window": "22-06"}),
        "batch": make_group("batch", desired=1, max_size=2, extra_tags={"AsgOptimiser:AllowedTypes": "c5.*"}),
        "legacy": make_group("legacy", desired=1, max_size=2, opted_in=False),
    }
    for _ in range(2):
        attach_spot(network, groups["web-b"])
    return groups


def test_compact_policy_spells_the_policy_in_a_few_words() -> None:
    tags = {"AsgOptimiser:MinOnDemandPercent": "50", "AsgOptimiser:MaxParallel": "3",
            "AsgOptimiser:AllowedTypes": "m5.*,c5.large", "AsgOptimiser:DeniedTypes": "m5.24xlarge",
            "AsgOptimiser:Window": "22-06"}
    policy = parse_policy("web", tags, default_grace_period=120)
    assert compact_policy(policy, desired=4) == (
        "keep 2 od, 3 at once, m5.*,c5.large but m5.24xlarge, grace 120s, 22-06 UTC")
    assert compact_policy(parse_policy("web", {}, default_grace_period=0), desired=9) == (
        "keep 0 od, 1 at once, any type")


def lines_of(table: str) -> list[str]:
    return [line for line in table.splitlines() if line.startswith("│")]


def test_one_line_per_group_totals_first_and_widths_follow_columns(aws: EmbeddedAws, fleet,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    result = cli("status")
    assert result.exit_code == 0, result.output
    rows = lines_of(result.stdout)
    assert len(rows) == 1 + 4  # the totals, then one line per opted-in group: nothing wraps
    assert all(len(line) == 100 for line in result.stdout.splitlines() if line[:1] in "┏│└")
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in rows]
    assert cells[0][:4] == ["4 groups", "9", "7", "2"]  # totals first: desired 3+3+2+1, on-demand 3+1+2+1
    assert [c[0] for c in cells[1:]][::2] == ["batch", "web-a"] and cells[4][0] == "web-b"
    long_row = cells[2]
    assert long_row[0].endswith("…") and LONG.startswith(long_row[0][:-1])
    # the long name squeezed nothing: every number and size is whole
    assert long_row[1:4] == ["2 (0-3)", "2", "0"]
    assert re.fullmatch(r"\$\d+\.\d{4}", long_row[7]) and re.fullmatch(r"\$\d+\.\d{4}", long_row[8])
    assert table_row(result.stdout, "web-b")[1:4] == ["3 (0-4)", "1", "2"]

    monkeypatch.setenv("COLUMNS", "220")
    wide = cli("status").stdout
    assert all(len(line) <= 220 for line in wide.splitlines())
    assert table_row(wide, LONG)[4] == "keep 0 od, 1 at once, any type, 22-06 UTC"  # room enough: nothing cut


def test_sort_and_patterns(aws: EmbeddedAws, fleet) -> None:
    def order(*args: str) -> list[str]:
        return [g["asg_name"] for g in cli_json("status", *args)["groups"]]

    assert order() == ["batch", "payments-api-production-eu-central-1-blue-green-canary-2026-with-a-name-this-long",
                       "web-a", "web-b"]
    assert order("--sort", "name") == order()
    assert order("--sort", "on-demand") == ["web-a", LONG, "batch", "web-b"]  # 3, 2, 1 (ties by name), 1
    saving = cli_json("status", "--sort", "saving")["groups"]
    assert saving[0]["asg_name"] == "web-b" and saving[0]["hourly_saving"] > 0
    assert all(g["hourly_saving"] == 0 for g in saving[1:])
    assert order("--asg", "web-*") == ["web-a", "web-b"]
    assert order("--asg", "web-?", "--asg", "batch", "--sort", "on-demand") == ["web-a", "batch", "web-b"]
    assert cli_json("status", "--asg", "web-*")["fleet"]["groups"] == 2  # the totals are the filtered ones'


@pytest.mark.parametrize(("args", "line"), [
    (["status", "--asg", "api-*"], "error: --asg 'api-*' matches no opted-in ASG in us-east-1"),
    (["status", "--asg", "legacy"], "error: --asg 'legacy' matches no opted-in ASG in us-east-1"),
    (["plan", "--asg", "nope-*"], "error: --asg 'nope-*' matches no ASG in us-east-1"),
])
def test_a_pattern_that_matches_nothing_is_refused(aws: EmbeddedAws, fleet, args: list[str], line: str) -> None:
    before = aws_state(aws)
    result = cli(*args)
    assert (result.exit_code, result.stdout, result.stderr.strip()) == (2, "", line)
    assert aws_state(aws) == before


def test_a_bad_sort_is_refused_naming_it(aws: EmbeddedAws, fleet) -> None:
    result = cli("status", "--sort", "cost")
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "'cost'" in result.stderr and "--sort" in result.stderr


def test_fleet_plan_is_one_line_per_group_and_plan_asg_one_per_instance(aws: EmbeddedAws, fleet,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "140")
    before = aws_state(aws)
    fleet_plan = cli("plan")
    assert fleet_plan.exit_code == 0, fleet_plan.output
    web_a = table_row(fleet_plan.stdout, "web-a")
    assert web_a[1:3] == ["1", "2"]
    assert re.fullmatch(r"replace i-[0-9a-f]+; MaxParallel 1 reached x2", web_a[3]), web_a
    assert "Instances" not in fleet_plan.stdout  # no per-instance table for the fleet
    data = cli_json("plan")
    assert sum(1 for v in data["plan"] if v["asg_name"] == "web-a") == 3  # JSON keeps every verdict

    per_instance = cli("plan", "--asg", "web-*")
    assert per_instance.exit_code == 0, per_instance.output
    listed = {(c[0], c[1]) for c in ([x.strip() for x in line.split("│")[1:-1]] for line in
                                     lines_of(per_instance.stdout)) if c[1].startswith("i-")}
    expected = {("web-a", i["InstanceId"]) for i in fleet["web-a"]["Instances"]}
    expected |= {("web-b", i["InstanceId"]) for i in fleet["web-b"]["Instances"]}
    assert expected <= listed
    assert json.loads(cli("-o", "json", "plan", "--asg", "web-*").stdout)["groups_scanned"] == 2
    assert aws_state(aws) == before
