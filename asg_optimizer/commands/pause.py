"""`asg-optimizer pause --why ...` / `resume`: the fleet-wide pause by hand, and the pause as `status` shows it.

The pause set by hand is one item in the stack's coordination table (durable, read by every function before it
starts a swap); the stack's alarm names and failure budget are read from the deployed scanner's environment, and
the pause is read by the functions' own reader (tasks/aws/pause_state.py) on the operator's session, so `status`
judges exactly as the scanner does (tasks/core/pause.py decides for both).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import typer
from botocore.exceptions import ClientError

from asg_optimizer.aws_session import CliError, Target
from asg_optimizer.commands.output import console, operator_command, print_json, settings
from stack.description import COOLDOWN_TABLE, STACK
from tasks.aws.clients import clients_from
from tasks.aws.coordination import KEY, PAUSE_KEY
from tasks.aws.pause_state import group_pauses, manual_pause_from_item, pause_item
from tasks.core.pause import ManualPause, Pause

SCANNER = "scanner"


def table_name(target: Target) -> str:
    return next(t for t in STACK.tables if t.environment == COOLDOWN_TABLE).name(target.prefix)


def _table_call(target: Target, method: str, **kwargs: Any) -> dict[str, Any]:
    try:
        return dict(getattr(target.client("dynamodb"), method)(TableName=table_name(target), **kwargs))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise CliError(f"no deployed table {table_name(target)} in {target.region_name}: deploy the stack "
                           "(`pulumi up`, see README), or pass --region or --prefix to find yours") from None
        raise


def _settings_environment(target: Target) -> dict[str, str]:
    name = target.function_name(SCANNER)
    try:
        found = target.client("lambda").get_function_configuration(FunctionName=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise CliError(f"no deployed function {name} in {target.region_name}: deploy the stack (`pulumi up`, "
                           "see README), or pass --region or --prefix to find yours") from None
        raise
    return dict((found.get("Environment") or {}).get("Variables") or {})


@contextmanager
def _deployed(target: Target) -> Iterator[None]:
    """A coordination table that is not there: the stack is not deployed here (region, prefix)."""
    try:
        yield
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise CliError(f"no deployed table {table_name(target)} in {target.region_name}: deploy the stack "
                           "(`pulumi up`, see README), or pass --region or --prefix to find yours") from None
        raise


def pauses(target: Target, groups: dict[str, dict[str, str]], now: datetime
           ) -> tuple[Pause | None, dict[str, Pause]]:
    """(the fleet's pause, group name -> its pause) for groups by name -> tags, as the scanner would judge: the
    functions' own reader, with the deployed scanner's settings, on the operator's session."""
    environ = _settings_environment(target)
    with _deployed(target), clients_from(target.client):
        return group_pauses(groups, now, environ=environ, table=table_name(target),
                            state_machine_arn=target.state_machine_arn())


@operator_command
def pause(ctx: typer.Context,
          why: str = typer.Option(..., "--why", help="Why (shown by status and in every skipped swap).")) -> None:
    """Pause the fleet by hand: scans, launch events, rebalances and rollouts start nothing new until `resume`
    (running swaps finish; interruption fallbacks always run)."""
    options = settings(ctx)
    target = options.target
    if not why.strip():
        raise CliError("--why '' is empty: say why the fleet is paused (others read it in status)")
    by = target.client("sts").get_caller_identity()["Arn"]
    record = ManualPause(why.strip(), by, datetime.now(UTC))
    _table_call(target, "put_item", Item=pause_item(record))
    if options.json:
        print_json({"paused": True, "why": record.why, "by": by, "since": record.since.isoformat()})
        return
    console().print(f"Paused by hand: {record.why} (by {by}). Running swaps finish; resume with "
                    "`asg-optimizer resume`.", markup=False, highlight=False)


@operator_command
def resume(ctx: typer.Context) -> None:
    """Lift the pause set by hand (alarms and the failure budget pause on their own until they clear)."""
    options = settings(ctx)
    target = options.target
    old = manual_pause_from_item(_table_call(target, "delete_item", Key={KEY: {"S": PAUSE_KEY}},
                                             ReturnValues="ALL_OLD").get("Attributes"))
    fleet, _ = pauses(target, {}, datetime.now(UTC))
    if options.json:
        print_json({"resumed": old is not None, "still_paused": fleet.why if fleet else None})
        return
    text = (f"Resumed: the pause by hand ({old.why}) is lifted." if old else "Not paused by hand: nothing to resume.")
    if fleet:
        text += f" Still {fleet.why}"
    console().print(text, markup=False, highlight=False)
