"""`asg-optimizer replace`: start one manual replacement, optionally watching it move through its states.

Everything the workflow's Validate would refuse is refused here first, read-only, with one line naming the bad
value, so a typo never leaves a failed execution behind. The execution itself still validates: the group may
change between this check and the start.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from botocore.exceptions import ClientError
from rich.console import Console, Group
from rich.live import Live

from asg_optimizer.aws_session import CliError, Target
from asg_optimizer.commands.commitments import read_fleet
from asg_optimizer.commands.execution_view import header, outcome_lines, print_link, read_timeline, steps_table
from asg_optimizer.commands.output import console, duration, now, operator_command, print_json, settings
from asg_optimizer.inventory import describe_group, executions, instances
from asg_optimizer.timeline import SWAPPED, Timeline
from tasks.aws.groups import group_from_response
from tasks.aws.instances import instance_from_response
from tasks.core.eligibility import check_floor_and_window, check_swappable, policy_of
from tasks.core.errors import SwapRefused
from tasks.core.naming import execution_name, instance_of
from tasks.core.tags import OPT_IN, is_opted_in
from tasks.core.timing import Timing, parse_timing

POLL_SECONDS = 0.5


def parse_timing_options(pairs: list[str]) -> Timing:
    """`--timing boot_poll_seconds=5` (repeatable) into the workflow's Timing, refused as Validate would."""
    raw: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise CliError(f"--timing {pair!r} is not KEY=WHOLE_NUMBER, e.g. boot_poll_seconds=5")
        raw[key.strip()] = int(value)
    try:
        return parse_timing(raw)
    except SwapRefused as error:
        raise CliError(str(error)) from None


def choose_instance(target: Target, asg_name: str, instance_id: str | None, force: bool, at: datetime) -> str:
    """The instance to replace; raises CliError for anything Validate would refuse (the window and the on-demand
    floor, and a commitment a swap would strand, only without --force). Without an id: the oldest on-demand
    instance Validate would accept."""
    raw = describe_group(target, asg_name)
    group = group_from_response(raw)
    if not is_opted_in(group.tags):
        value = group.tags.get(OPT_IN)
        shown = "missing" if value is None else repr(value)
        # No --force way round: the deployed IAM lets the functions change opted-in groups only.
        raise CliError(f"ASG {asg_name} is not opted in: tag {OPT_IN} is {shown}, expected 'true'")
    policy = refusal_of(lambda: policy_of(group))
    replacing = {instance_of(e["name"]): e["name"] for e in executions(target, "RUNNING", fallbacks=False)}
    found = {i: instance_from_response(r) for i, r in instances(target, [m.instance_id for m in group.members]).items()}
    spot_ids = {i for i, instance in found.items() if not instance.on_demand}
    if instance_id is not None:
        if group.member(instance_id) is None:
            raise CliError(f"instance {instance_id} is not a member of ASG {asg_name}")
        check(group, found.get(instance_id), instance_id)
        if instance_id in replacing:
            raise CliError(f"instance {instance_id} is already being replaced by execution {replacing[instance_id]}")
        candidates = [instance_id]
    else:
        candidates = eligible_oldest_first(group, found, replacing)
    if force:
        return candidates[0]
    hint = "; pass --force to replace it anyway (recorded in the execution input)"
    in_flight = {i for i in replacing if i}
    refusal_of(lambda: check_floor_and_window(group, policy, candidates[0], spot_ids, in_flight, at), hint=hint)
    fleet = read_fleet(target)[2] if policy.uses_commitments else None
    stranding = [(i, why) for i in candidates if fleet and (why := fleet.stranded_by(i))]
    if len(stranding) == len(candidates):  # without an id: the oldest whose swap strands no commitment
        chosen, why = stranding[0]
        raise CliError(f"instance {chosen} in ASG {asg_name} is {why}{hint}")
    return next(i for i in candidates if i not in dict(stranding))


def eligible_oldest_first(group: Any, found: dict[str, Any], replacing: dict[str | None, str]) -> list[str]:
    candidates, reasons = [], []
    for member in group.members:
        instance = found.get(member.instance_id)
        try:
            check(group, instance, member.instance_id)
        except CliError as refused:
            reasons.append(str(refused))
            continue
        if member.instance_id in replacing:
            reasons.append(f"instance {member.instance_id} is already being replaced by execution "
                           f"{replacing[member.instance_id]}")
            continue
        assert instance is not None
        candidates.append((instance.launch_time or "", member.instance_id))
    if not candidates:
        detail = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
        raise CliError(f"ASG {group.name} has no on-demand instance to replace" + (f": {detail}" if detail else
                                                                                   ": it has no instances"))
    return [instance_id for _, instance_id in sorted(candidates)]


T = TypeVar("T")


def refusal_of(decide: Callable[[], T], hint: str = "") -> T:
    """Run one of Validate's own checks; its refusal becomes the operator's one line."""
    try:
        return decide()
    except SwapRefused as error:
        raise CliError(f"{error}{hint}") from None


def check(group: Any, instance: Any, instance_id: str) -> None:
    refusal_of(lambda: check_swappable(group, instance, instance_id))


def start(target: Target, asg_name: str, instance_id: str, timing: Timing, force: bool, at: datetime) -> str:
    """Start the execution as the scanner starts its own (same name scheme, same input), reason `manual`."""
    name = execution_name(asg_name, instance_id, at)
    payload: dict[str, Any] = {"asg_name": asg_name, "instance_id": instance_id, "reason": "manual",
                               "timing": timing.flat()}
    if force:
        payload["force"] = True
    try:
        return str(target.client("stepfunctions").start_execution(
            stateMachineArn=target.state_machine_arn(), name=name, input=json.dumps(payload, sort_keys=True)
        )["executionArn"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            raise CliError(f"execution {name} already exists: a replacement of {instance_id} started this second") \
                from None
        raise


def follow(target: Target, execution_arn: str, out: Console) -> Timeline:
    """Poll until the execution ends; a terminal gets a live table, a pipe (CI logs, files) one line per state
    entered, from the history so no short state is missed, then the final table."""
    timeline = read_timeline(target, execution_arn)
    if not out.is_terminal:
        told = 0
        while True:
            for step in timeline.steps[told:]:
                at = duration((step.entered - timeline.started).total_seconds())
                out.print(f"  +{at} {step.name}" + (f" (visit {step.visit})" if step.visit > 1 else ""),
                          highlight=False, markup=False)
            told = len(timeline.steps)
            if timeline.ended:
                return timeline
            time.sleep(POLL_SECONDS)
            timeline = read_timeline(target, execution_arn)
    with Live(Group(header(timeline), steps_table(timeline, now())), console=out, refresh_per_second=4,
              transient=True) as live:
        while not timeline.ended:
            time.sleep(POLL_SECONDS)
            timeline = read_timeline(target, execution_arn)
            live.update(Group(header(timeline), steps_table(timeline, now())))
    return timeline


@operator_command
def replace(
    ctx: typer.Context,
    asg: str = typer.Option(..., "--asg", help="The Auto Scaling group."),
    instance: str | None = typer.Option(None, "--instance",
                                        help="The on-demand instance to replace (default: the oldest eligible one)."),
    wait: bool = typer.Option(False, "--wait", help="Follow the execution until it ends; exit 0 only if it swapped."),
    force: bool = typer.Option(False, "--force",
                               help="Replace even outside the group's window or below its on-demand floor "
                                    "(recorded in the execution input as force: true)."),
    timing: Annotated[list[str] | None, typer.Option(
        "--timing", metavar="KEY=SECONDS", help="Workflow timing, e.g. boot_poll_seconds=5 (repeatable).")] = None,
) -> None:
    """Start a manual replacement of one on-demand instance with spot; --wait to watch it to the end."""
    options = settings(ctx)
    target = options.target
    chosen_timing = parse_timing_options(timing or [])
    target.state_machine_arn()
    started_at = now()
    instance_id = choose_instance(target, asg, instance, force, started_at)
    execution_arn = start(target, asg, instance_id, chosen_timing, force, started_at)
    link = target.console_url(execution_arn)
    out = console()
    if not options.json:
        out.print(f"Started {execution_arn.rsplit(':', 1)[-1]}: replacing {instance_id} in ASG {asg}")
        print_link(out, link)
    if not wait:
        if options.json:
            print_json({"execution_arn": execution_arn, "name": execution_arn.rsplit(":", 1)[-1], "asg_name": asg,
                        "instance_id": instance_id, "status": "RUNNING", "console_url": link})
        return
    try:
        timeline = follow(target, execution_arn, Console(quiet=True) if options.json else out)
    except KeyboardInterrupt:
        out.print(f"Still running; follow it with: asg-optimizer show {execution_arn.rsplit(':', 1)[-1]}")
        raise typer.Exit(130) from None
    at = now()
    if options.json:
        print_json({**timeline.as_dict(at, target.region_name), "console_url": link})
    else:
        out.print(header(timeline))
        out.print(steps_table(timeline, at))
        for line in outcome_lines(timeline, at):
            out.print(line)
    raise typer.Exit(0 if timeline.outcome == SWAPPED else 1)
