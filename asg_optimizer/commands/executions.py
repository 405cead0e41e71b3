"""`asg-optimizer executions` (newest first, filtered) and `asg-optimizer show` (one execution's timeline)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from botocore.exceptions import ClientError
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from asg_optimizer.aws_session import CliError, Target
from asg_optimizer.commands import regions
from asg_optimizer.commands.execution_view import (
    header,
    outcome_lines,
    print_link,
    read_timeline,
    status_text,
    steps_table,
)
from asg_optimizer.commands.output import (
    ago,
    console,
    duration,
    now,
    operator_command,
    print_csv,
    print_json,
    settings,
)
from asg_optimizer.inventory import executions, group_exists
from asg_optimizer.timeline import Timeline, json_object, not_swapped_why, outcome_of, readable_cause
from tasks.core.naming import belongs_to

CSV_FIELDS = ("region", "name", "kind", "trigger", "asg_name", "instance_id", "status", "outcome", "started",
              "stopped", "seconds", "error", "cause", "why")
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_since(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d`, `1h30m`."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise CliError(f"--since {text!r} is not a duration such as 30m, 2h, 1d or 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_status(text: str | None) -> str | None:
    if text is None:
        return None
    wanted = text.strip().upper().replace("-", "_")
    if wanted not in STATUSES:
        raise CliError(f"--status {text!r} is not one of {', '.join(STATUSES)}")
    return wanted


def select(target: Target, asg: str | None, status: str | None, since: timedelta | None,
           limit: int) -> list[dict[str, Any]]:
    """Newest first; stops reading pages at the first execution older than --since or once --limit is reached."""
    oldest = now() - since if since is not None else None
    chosen = []
    for execution in executions(target, status):
        if oldest is not None and execution["startDate"] < oldest:
            break
        if asg is not None and not belongs_to(execution["name"], asg):
            continue
        chosen.append(execution)
        if len(chosen) >= limit:
            break
    return chosen


def _with_outcomes(target: Target, chosen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ListExecutions carries neither the input (the reason), the error nor the outcome: describe each one (at
    most --limit calls)."""
    sfn = target.client("stepfunctions")
    rows = []
    for execution in chosen:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        facts = json_object(described.get("input"))
        error = cause = why = None
        outcome = execution["status"]
        if described["status"] != "RUNNING":
            error, cause = described.get("error"), readable_cause(described.get("cause")) or None
            output = json_object(described.get("output"))
            outcome = outcome_of(described["status"], output, execution["kind"])
            why = not_swapped_why(outcome, output)
        stopped: datetime | None = execution.get("stopDate")
        rows.append({
            "name": execution["name"], "arn": execution["executionArn"], "kind": execution["kind"],
            "trigger": facts.get("reason"), "asg_name": facts.get("asg_name"), "instance_id": facts.get("instance_id"),
            "status": execution["status"], "outcome": outcome,
            "started": execution["startDate"], "stopped": stopped,
            "seconds": round(((stopped or now()) - execution["startDate"]).total_seconds(), 3),
            "error": error, "cause": cause, "why": why,
        })
    return rows


@operator_command
def list_executions(
    ctx: typer.Context,
    asg: str | None = typer.Option(None, "--asg", help="Only this ASG's replacements."),
    status: str | None = typer.Option(None, "--status", help=f"One of {', '.join(STATUSES)}."),
    since: str | None = typer.Option(None, "--since", help="Started within this long, e.g. 30m, 2h, 1d."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many."),
    all_regions: bool = typer.Option(False, "--all-regions", help="Every enabled region where the stack is deployed, "
                                                                  "merged (or give --region several times)."),
) -> None:
    """Replacement executions and interruption fallbacks, newest first (a deleted group's too); several regions
    merge, newest first, with a region column."""
    options = settings(ctx)
    targets = regions.targets(options, all_regions)
    wanted_status, window = parse_status(status), parse_since(since) if since is not None else None
    rows: list[dict[str, Any]] = []
    for target in targets:
        target.state_machine_arn()
        found = _with_outcomes(target, select(target, asg, wanted_status, window, limit))
        rows += [{**r, "region": target.region_name, "console_url": target.console_url(r["arn"])} for r in found]
    rows = sorted(rows, key=lambda r: r["started"], reverse=True)[:limit]  # newest first across regions
    where = ", ".join(t.region_name for t in targets)
    if asg is not None and not rows and not any(group_exists(t, asg) for t in targets):
        raise CliError(f"ASG {asg} does not exist in {where} and no execution of it matches")
    several = len(targets) > 1
    if options.csv:
        print_csv(CSV_FIELDS, rows)
        return
    if options.json:
        print_json({**({"regions": [t.region_name for t in targets]} if several else {}), "executions": [
            {**{k: v for k, v in r.items() if several or k != "region"}, "started": r["started"].isoformat(),
             "stopped": r["stopped"].isoformat() if r["stopped"] else None} for r in rows]})
        return
    out = console()
    if not rows:
        out.print("No executions match.")
        return
    at = now()
    table = Table(title="Swaps and interruption fallbacks, newest first", title_justify="left")
    for column in ("execution", *(("region",) if several else ()), "trigger", "status", "started", "took"):
        table.add_column(column, no_wrap=True)
    table.add_column("error / why not swapped", overflow="fold")
    for r in rows:
        error = escape(f"{r['error']}: {r['cause']}") if r["error"] else escape(r["why"] or "")
        table.add_row(r["name"], *((r["region"],) if several else ()), escape(r["trigger"] or r["kind"]),
                      status_text(r["status"], r["outcome"]), ago(r["started"], at), duration(r["seconds"]), error)
    out.print(table)
    if len(rows) == limit:
        out.print(f"First {limit} shown; --limit for more.", style="dim")


def load(target: Target, name_or_arn: str) -> Timeline:
    """An execution by ARN, or by name: a swap's first, else an interruption fallback's (both are named
    `<asg>-<instance>-<stamp>`)."""
    arns = [target.execution_arn(name_or_arn)]
    fallback_machine = None if name_or_arn.startswith("arn:") else target.interruption_machine_arn()
    if fallback_machine:
        arns.append(fallback_machine.replace(":stateMachine:", ":execution:", 1) + ":" + name_or_arn)
    for arn in arns:
        try:
            return read_timeline(target, arn)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("ExecutionDoesNotExist", "InvalidArn"):
                raise
    also = " and among the interruption fallbacks" if len(arns) > 1 else ""
    raise CliError(f"execution {name_or_arn} not found (looked for {arns[0]}{also})")


@operator_command
def show(
    ctx: typer.Context,
    execution: str = typer.Argument(..., metavar="NAME|ARN", help="An execution name or ARN."),
) -> None:
    """One execution: states entered with durations, the path (loops counted), the error, the console link."""
    options = settings(ctx)
    target = options.target
    timeline = load(target, execution)
    at = now()
    if options.json:
        print_json({**timeline.as_dict(at, target.region_name), "console_url": target.console_url(timeline.arn)})
        return
    out = console()
    facts = timeline.input
    started = timeline.started.astimezone(UTC)
    out.print(Text.from_markup(
        f"ASG [bold]{facts.get('asg_name', '?')}[/], instance [bold]{facts.get('instance_id', '?')}[/], reason "
        f"{facts.get('reason', '?')}; started {started:%Y-%m-%d %H:%M:%S} UTC ({ago(timeline.started, at)})"))
    out.print(header(timeline))
    out.print(steps_table(timeline, at))
    for line in outcome_lines(timeline, at):
        out.print(line)
    print_link(out, target.console_url(timeline.arn))
