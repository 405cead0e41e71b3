"""`asg-optimizer plan`: the scanner's own dry run, so what it shows is exactly what the next scheduled scan
would start (same code, same policy parsing, same limits), and why every other instance and group is left alone."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from asg_optimizer.aws_session import Target
from asg_optimizer.commands.output import console, matching, operator_command, print_json, settings
from asg_optimizer.inventory import describe_group
from tasks.aws.clients import clients_from
from tasks.aws.groups import every_group
from tasks.core.plural import counted

GLOB = set("*?[")

SCANNER = "scanner"


def plan_table(result: dict[str, Any]) -> Table:
    table = Table(title="Instances", title_justify="left")
    for column in ("ASG", "instance", "action"):
        table.add_column(column, no_wrap=True)
    table.add_column("why", overflow="fold")
    rows = sorted(result.get("plan", []), key=lambda v: (v["asg_name"], v["action"] != "replace", v["instance_id"]))
    for verdict in rows:
        action = "[green]replace[/]" if verdict["action"] == "replace" else "[dim]skip[/]"
        table.add_row(escape(verdict["asg_name"]), verdict["instance_id"], action, escape(verdict["why"]))
    return table


def grouped_table(result: dict[str, Any]) -> Table:
    """The fleet plan, one line per group: how many would be replaced and which, and why the rest stay (each
    reason once, counted)."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for verdict in result.get("plan", []):
        by_group.setdefault(verdict["asg_name"], []).append(verdict)
    table = Table(title="Groups", title_justify="left")
    table.add_column("ASG", no_wrap=True, overflow="ellipsis", max_width=40)
    table.add_column("replace", justify="right", no_wrap=True)
    table.add_column("skip", justify="right", no_wrap=True)
    table.add_column("what and why", no_wrap=True, overflow="ellipsis")
    for name in sorted(by_group):
        verdicts = by_group[name]
        picks = sorted(v["instance_id"] for v in verdicts if v["action"] == "replace")
        reasons: dict[str, int] = {}
        for v in verdicts:
            if v["action"] != "replace":
                short = v["why"].split(" (", 1)[0]
                reasons[short] = reasons.get(short, 0) + 1
        parts = [f"replace {', '.join(picks)}"] if picks else []
        parts += [f"{why} x{count}" if count > 1 else why for why, count in sorted(reasons.items())]
        table.add_row(escape(name), str(len(picks)), str(len(verdicts) - len(picks)), escape("; ".join(parts)))
    return table


def expand(target: Target, names: list[str]) -> list[str]:
    """Names as given; a shell pattern (`web-*`) becomes the groups in the region it matches (one line naming
    a name or pattern that finds nothing)."""
    expanded: list[str] = []
    every: list[str] = []
    if any(GLOB & set(n) for n in names):
        with clients_from(target.client):
            every = sorted(g["AutoScalingGroupName"] for g in every_group())
    for name in names:
        if GLOB & set(name):
            expanded += matching(every, [name], f"ASG in {target.region_name}")
        else:
            describe_group(target, name)
            expanded.append(name)
    return list(dict.fromkeys(expanded))


def skipped_table(result: dict[str, Any]) -> Table:
    table = Table(title="Groups left alone", title_justify="left")
    table.add_column("ASG", no_wrap=True)
    table.add_column("why", overflow="fold")
    for skip in sorted(result.get("skipped_groups", []), key=lambda s: s["asg_name"]):
        table.add_row(escape(skip["asg_name"]), escape(skip["why"]))
    return table


@operator_command
def plan(
    ctx: typer.Context,
    asg: Annotated[list[str] | None, typer.Option(
        "--asg", metavar="NAME|GLOB", help="Only these ASGs, by name or shell pattern (repeatable), one line per "
                                           "instance; default: every opted-in one, one line per group.")] = None,
) -> None:
    """What the scanner would replace now, and why the others are left alone (a dry run: nothing changes)."""
    options = settings(ctx)
    target = options.target
    asg = expand(target, asg or [])
    payload: dict[str, Any] = {"dry_run": True}
    if asg:
        payload["asg_names"] = asg
    result = target.invoke(SCANNER, payload)
    if options.json:
        print_json(result)
        return
    out = console()
    verdicts = result.get("plan", [])
    picks = [v for v in verdicts if v["action"] == "replace"]
    skipped = result.get("skipped_groups", [])
    if verdicts:
        out.print(plan_table(result) if asg else grouped_table(result))
    if skipped:
        out.print(skipped_table(result))
    out.print(f"{counted(result.get('groups_scanned', 0), 'group')} scanned: {counted(len(picks), 'instance')} would "
              f"be replaced, {len(verdicts) - len(picks)} left alone, {counted(len(skipped), 'group')} left alone. "
              "Nothing was changed.")
