"""`asg-optimizer plan`: the scanner's own dry run, so what it shows is exactly what the next scheduled scan
would start (same code, same policy parsing, same limits), and why every other instance and group is left alone."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from asg_optimizer.commands.output import console, operator_command, print_json, settings
from asg_optimizer.inventory import describe_group
from tasks.core.plural import counted

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
        "--asg", help="Only this ASG (repeat for several); default: every opted-in one.")] = None,
) -> None:
    """What the scanner would replace now, and why the others are left alone (a dry run: nothing changes)."""
    options = settings(ctx)
    target = options.target
    asg = asg or []
    for name in asg:
        describe_group(target, name)
    payload: dict[str, Any] = {"dry_run": True}
    if asg:
        payload["asg_names"] = list(dict.fromkeys(asg))
    result = target.invoke(SCANNER, payload)
    if options.json:
        print_json(result)
        return
    out = console()
    verdicts = result.get("plan", [])
    picks = [v for v in verdicts if v["action"] == "replace"]
    skipped = result.get("skipped_groups", [])
    if verdicts:
        out.print(plan_table(result))
    if skipped:
        out.print(skipped_table(result))
    out.print(f"{counted(result.get('groups_scanned', 0), 'group')} scanned: {counted(len(picks), 'instance')} would "
              f"be replaced, {len(verdicts) - len(picks)} left alone, {counted(len(skipped), 'group')} left alone. "
              "Nothing was changed.")
