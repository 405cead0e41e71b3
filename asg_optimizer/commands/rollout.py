"""`asg-optimizer rollout start|status|resume|cancel`: roll a group to a launch template version or AMI through
the rollout state machine (docs/rollouts.md). Bad input is refused here, one line, exit 2, before anything
starts; the rollout's Plan checks again (the group may change in between)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from botocore.exceptions import ClientError
from rich.console import Console

from asg_optimizer.aws_session import CliError, Target
from asg_optimizer.commands.output import console, operator_command, print_json, settings
from asg_optimizer.commands.pause import table_name
from asg_optimizer.commands.replace import parse_timing_options
from asg_optimizer.inventory import describe_group, instances
from asg_optimizer.timeline import json_object
from stack.description import ROLLOUT, STACK
from tasks.aws.clients import clients_from
from tasks.aws.executions import executions
from tasks.aws.instances import instance_from_response
from tasks.aws.rollout_records import forget_token, kept_token, request_cancel
from tasks.core.errors import InvalidInput
from tasks.core.naming import group_prefix
from tasks.core.rollout import ROLLOUT_MARK, parse_rollout_request, rollout_name

app = typer.Typer(no_args_is_help=True, help="Roll a group to a launch template version or AMI, batch by batch.")
POLL_SECONDS = 1.0
ROLLOUT_STATES = frozenset(json.loads(STACK.state_machine(ROLLOUT).path.read_text())["States"])  # not Map's


def _machine_arn(target: Target) -> str:
    name = STACK.state_machine(ROLLOUT).name(target.prefix)
    return target.state_machine_arn().replace(
        f":stateMachine:{STACK.state_machine('replace-instance').name(target.prefix)}", f":stateMachine:{name}")


def _latest(target: Target, asg_name: str, status: str | None = None) -> dict[str, Any] | None:
    prefix = group_prefix(asg_name) + ROLLOUT_MARK
    with clients_from(target.client):
        listing = executions(_machine_arn(target), status)
    return next((dict(e) for e in listing if e["name"].startswith(prefix)), None)


def _last_state(target: Target, arn: str) -> tuple[str, dict[str, Any]]:
    """(the rollout's own state entered last, the newest state output that carries the rollout's progress)."""
    pages = target.client("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=arn)
    entered, progress = "", {}
    for page in pages:
        for event in page["events"]:
            name = (event.get("stateEnteredEventDetails") or {}).get("name", "")
            if event["type"].endswith("StateEntered") and name in ROLLOUT_STATES:
                entered = name
            output = json_object((event.get("stateExitedEventDetails") or {}).get("output"))
            if isinstance(output.get("moved"), list):
                progress = output
    return entered, progress


def describe(target: Target, asg_name: str, execution: dict[str, Any] | None = None) -> dict[str, Any]:
    """The group's newest rollout (or `execution`): status, the state it is in, its progress and why."""
    execution = execution or _latest(target, asg_name)
    if execution is None:
        raise CliError(f"ASG {asg_name} has no rollout")
    described = target.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    state, progress = _last_state(target, execution["executionArn"])
    output = json_object(described.get("output"))
    result = {"name": execution["name"], "status": described["status"], "state": state,
              "outcome": output.get("outcome"), "why": output.get("why") or progress.get("why"),
              "error": described.get("error")}
    if progress:
        result.update(batch=progress["batch_index"] + 1, batches=len(progress["batches"]),
                      moved=len(progress["moved"]), kept=len(progress["kept"]), failed=len(progress["failed"]),
                      target=progress["target"])
    return result


def _line(found: dict[str, Any]) -> str:
    text = f"{found['name']}: {found['status']}, at {found['state'] or '-'}"
    if "batch" in found:
        text += (f"; batch {found['batch']} of {found['batches']}, {found['moved']} moved, {found['kept']} kept, "
                 f"{found['failed']} failed")
    if found.get("why"):
        text += f"; {found['why']}"
    return text


@app.command()
@operator_command
def start(ctx: typer.Context,
          asg: str = typer.Option(..., "--asg", help="The Auto Scaling group."),
          version: int | None = typer.Option(None, "--version", help="Launch template version to roll to."),
          image: str | None = typer.Option(None, "--image", help="AMI to roll to (ami-...)."),
          batch: str = typer.Option("1", "--batch", help="Instances per batch: a count or a percentage (20%)."),
          checkpoints: str = typer.Option("", "--checkpoints", help="Pause at these percentages, e.g. 25,50."),
          bake: int = typer.Option(0, "--bake", help="Seconds each batch serves before the alarm gate."),
          alarm: Annotated[list[str] | None, typer.Option(
              "--alarm", help="CloudWatch metric alarm gating each batch (repeatable).")] = None,
          no_rollback: bool = typer.Option(False, "--no-rollback", help="Stop without replacing moved ones back."),
          failure_budget: int = typer.Option(0, "--failure-budget", help="Failed replacements tolerated."),
          timing: Annotated[list[str] | None, typer.Option(
              "--timing", help="Workflow timing KEY=N for every replacement (repeatable).")] = None,
          wait: bool = typer.Option(False, "--wait", help="Follow the rollout until it ends."),
          ) -> None:
    """Start a rollout: one execution named <asg>-rollout-<time>, its children <asg>-<instance>-<same time>."""
    options = settings(ctx)
    target = options.target
    if (version is None) == (image is None):
        raise CliError("give exactly one of --version N or --image ami-...")
    try:
        points = [int(p) for p in checkpoints.split(",") if p.strip()] if checkpoints.strip() else []
    except ValueError:
        raise CliError(f"--checkpoints {checkpoints!r} is not a list of percentages such as 25,50") from None
    payload: dict[str, Any] = {
        "asg_name": asg, "to": {"launch_template_version": str(version)} if version is not None else
        {"image_id": image}, "batch": batch, "checkpoints": points, "bake_seconds": bake, "alarms": alarm or [],
        "rollback_on_failure": not no_rollback, "failure_budget": failure_budget,
        "timing": parse_timing_options(timing or []).flat()}
    try:
        parse_rollout_request(payload)
    except InvalidInput as error:
        raise CliError(str(error).replace("to must be", "--version/--image: the target must be")) from None
    describe_group(target, asg)
    name = rollout_name(asg, datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    arn = target.client("stepfunctions").start_execution(stateMachineArn=_machine_arn(target), name=name,
                                                         input=json.dumps(payload))["executionArn"]
    if options.json and not wait:
        print_json({"execution": name, "execution_arn": arn})
        return
    out = console()
    out.print(f"Started {name}", markup=False, highlight=False)
    if wait:
        watch(lambda: describe(target, asg), out)


def watch(read: Callable[[], dict[str, Any]], out: Console) -> None:
    """Follow a rollout until it ends or waits at a checkpoint: one line per change (a CI log gets the story,
    not one line per poll)."""
    told = None
    while True:
        found = read()
        if _line(found) != told:
            told = _line(found)
            out.print(told, markup=False, highlight=False)
        if found["status"] != "RUNNING" or found["state"] == "Checkpoint":
            return
        time.sleep(POLL_SECONDS)


@app.command()
@operator_command
def status(ctx: typer.Context, asg: str = typer.Option(..., "--asg", help="The Auto Scaling group.")) -> None:
    """The group's newest rollout: where it is, batches, instances moved, kept and failed, and why."""
    options = settings(ctx)
    found = describe(options.target, asg)
    found["on_target"], found["not_on_target"] = _on_target(options.target, asg, found.get("target"))
    if options.json:
        print_json(found)
        return
    console().print(_line(found) + f"; instances on the target: {found['on_target']}, not yet: "
                    f"{found['not_on_target']}", markup=False, highlight=False)


def _on_target(target: Target, asg: str, wanted: dict[str, str] | None) -> tuple[int, int]:
    if not wanted:
        return 0, 0
    group = describe_group(target, asg)
    found = instances(target, [i["InstanceId"] for i in group.get("Instances", [])])
    parsed = [instance_from_response(i) for i in found.values()]
    on = sum(1 for i in parsed if (i.image_id == wanted.get("image_id")) or
             (i.tags.get("aws:ec2launchtemplate:version") == wanted.get("launch_template_version")))
    return on, len(parsed) - on


def _running(target: Target, asg: str) -> dict[str, Any]:
    """The group's running rollout; none is a one-line error (exit 2)."""
    running = _latest(target, asg, "RUNNING")
    if running is None:
        raise CliError(f"ASG {asg} has no running rollout")
    return running


def _token(target: Target, name: str) -> str | None:
    with clients_from(target.client):
        return kept_token(name, table_name(target))


@app.command()
@operator_command
def resume(ctx: typer.Context, asg: str = typer.Option(..., "--asg", help="The Auto Scaling group.")) -> None:
    """Let a rollout waiting at a checkpoint go on with its next batch."""
    target = settings(ctx).target
    running = _running(target, asg)
    token = _token(target, running["name"])
    if token is None or describe(target, asg, running)["state"] != "Checkpoint":
        raise CliError(f"rollout {running['name']} is not waiting at a checkpoint")
    _send(target, running["name"], token, success=True)
    console().print(f"Resumed {running['name']}", markup=False, highlight=False)


@app.command()
@operator_command
def cancel(ctx: typer.Context, asg: str = typer.Option(..., "--asg", help="The Auto Scaling group.")) -> None:
    """Stop a rollout after its running batch (at once at a checkpoint); moved instances stay on the target."""
    target = settings(ctx).target
    running = _running(target, asg)
    name = running["name"]
    with clients_from(target.client):
        request_cancel(name, table_name(target))
    token = _token(target, name)
    if token is not None and describe(target, asg, running)["state"] == "Checkpoint":
        _send(target, name, token, success=False)
    console().print(f"Cancelling {name}: no further batch starts", markup=False, highlight=False)


def _send(target: Target, name: str, token: str, *, success: bool) -> None:
    sfn = target.client("stepfunctions")
    try:
        if success:
            sfn.send_task_success(taskToken=token, output=json.dumps({"resumed_by": "asg-optimizer rollout resume"}))
        else:
            sfn.send_task_failure(taskToken=token, error="RolloutCancelled", cause="asg-optimizer rollout cancel")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
            raise CliError(f"rollout {name} is no longer waiting at that checkpoint") from None
        raise
    with clients_from(target.client):
        forget_token(name, table_name(target))
