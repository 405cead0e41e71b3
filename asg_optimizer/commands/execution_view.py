"""How an execution is shown: its status (a success that swapped nothing says so), the states entered with
their durations, the path and outcome, and the console link. Shared by `replace --wait`, `show`, `executions`
and `status`."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from asg_optimizer.aws_session import Target
from asg_optimizer.commands.output import duration
from asg_optimizer.timeline import GOOD_OUTCOMES, REPLACED, SWAPPED, Timeline, build_timeline, not_swapped_why


def read_timeline(target: Target, execution_arn: str) -> Timeline:
    sfn = target.client("stepfunctions")
    described = sfn.describe_execution(executionArn=execution_arn)
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return build_timeline(described, [e for page in pages for e in page["events"]])


STATUS_STYLE = {"SUCCEEDED": "green", "RUNNING": "yellow"}


def steps_table(timeline: Timeline, at: datetime) -> Table:
    """The states entered so far, with durations; the one running now in yellow."""
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("state", no_wrap=True)
    table.add_column("at", justify="right", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    table.add_column("note", overflow="fold")
    for index, step in enumerate(timeline.steps, start=1):
        running = step.exited is None and not timeline.ended
        offset = (step.entered - timeline.started).total_seconds()
        note = f"visit {step.visit}" if step.visit > 1 else ""
        if step.error:
            note = (note + ", " if note else "") + f"[red]{escape(step.error)}[/]"
        if running:
            note = (note + ", " if note else "") + "[yellow]running[/]"
        table.add_row(str(index), step.name, f"+{duration(offset)}", duration(step.seconds(at)), note)
    return table


def status_text(status: str, outcome: str) -> str:
    """SUCCEEDED in green for a swap (or a fallback that got its capacity in); a success that swapped nothing
    says so, in yellow."""
    if status == "SUCCEEDED" and outcome == REPLACED:
        return f"[green]SUCCEEDED ({REPLACED})[/]"
    if status == "SUCCEEDED" and outcome not in GOOD_OUTCOMES:
        return f"[yellow]SUCCEEDED ({escape(outcome)})[/]"
    return f"[{STATUS_STYLE.get(status, 'red')}]{status}[/]"


def header(timeline: Timeline) -> Text:
    return Text.from_markup(f"{escape(timeline.name)}: {status_text(timeline.status, timeline.outcome)}")


def outcome_lines(timeline: Timeline, at: datetime) -> list[Text]:
    took = duration(timeline.seconds(at))
    lines = [Text(f"Path: {timeline.path()}")]
    if timeline.outcome == SWAPPED:
        launched = timeline.output.get("spot", {})
        spot, old = launched.get("spot_instance_id"), timeline.input.get("instance_id")
        swapped = f": {old} replaced by spot {spot}" if spot else ""
        if spot and launched.get("spot_instance_type"):
            swapped += f" ({launched['spot_instance_type']}"
            if isinstance(launched.get("spot_price"), int | float):
                swapped += f" at ${launched['spot_price']:.4f}/h"
                if isinstance(launched.get("on_demand_price"), int | float):
                    swapped += f" for ${launched['on_demand_price']:.4f}/h on-demand"
            swapped += ")"
        lines.append(Text.assemble(("Swapped", "green"), f" in {took}{swapped}"))
    elif timeline.outcome == REPLACED:
        spot, release = timeline.input.get("instance_id", "?"), timeline.output.get("release") or {}
        how = f"desired raised to {timeline.output.get('raised_to', '?')}"
        if release.get("why"):
            how += f"; {release['why']}"
        lines.append(Text.assemble(("Fallback done", "green"),
                                   f" in {took}: spot {spot} warned, on-demand capacity in ({how})"))
    elif timeline.status == "SUCCEEDED":
        why = not_swapped_why(timeline.outcome, timeline.output)
        lines.append(Text.assemble(("Not swapped", "yellow"),
                                   f" ({timeline.outcome}) after {took}" + (f": {why}" if why else "")))
    elif timeline.ended:
        where = f" in {timeline.failed_in}" if timeline.failed_in else ""
        detail = "".join(f": {p}" for p in (timeline.error, timeline.cause) if p)
        lines.append(Text.assemble((timeline.status, "red"), f"{where} after {took}{detail}"))
    else:
        lines.append(Text.assemble(("RUNNING", "yellow"), f" for {took}, now in {timeline.current or 'Starting'}"))
    return lines


def print_link(out: Console, link: str | None) -> None:
    """On one line whatever the width, so it stays clickable and copyable; none against a local emulator (the
    real console would show an account's execution of that name, or nothing)."""
    if link is None:
        out.print("Console: none for a local endpoint (`asg-optimizer show NAME` reads the same history)",
                  style="dim", highlight=False)
        return
    out.print(f"Console: {link}", soft_wrap=True, highlight=False)


