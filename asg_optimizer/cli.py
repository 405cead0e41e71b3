"""`asg-optimizer`: the operator CLI (typer + rich). The global options say where AWS is; the commands live in
asg_optimizer.commands, one module per command group."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_errors  # typer's own click: its usage errors
from typer.core import TyperGroup

from asg_optimizer.aws_session import Target
from asg_optimizer.commands import assess, commitments, executions, local, pause, plan, replace, rollout, status, sweep
from asg_optimizer.commands.output import Output, Settings, console, fail
from asg_optimizer.commands.regions import MERGING
from stack.description import DEFAULT_PREFIX

__all__ = ["app", "console"]

CSV_COMMANDS = ("assess", "status", "plan", "executions")



class OneLineErrors(TyperGroup):
    """Usage errors (unknown option, bad value, missing argument) as one line naming the bad value, exit 2, like
    every other refusal, instead of typer's multi-line box."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, standalone_mode: bool = True,
             **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(args, *rest, standalone_mode=False, **kwargs)  # type: ignore[misc]
        try:
            code = super().main(args, *rest, standalone_mode=False, **kwargs)  # type: ignore[misc]
        except click_errors.NoArgsIsHelpError as error:
            typer.echo(error.ctx.get_help() if error.ctx else error.format_message())
            sys.exit(2)
        except click_errors.ClickException as error:
            message = " ".join(error.format_message().split())
            if isinstance(error, click_errors.BadParameter):
                given = _given(list(sys.argv[1:] if args is None else args), error)
                message += f" (got {given!r})" if given is not None and repr(given) not in message else ""
            where = ""
            if isinstance(error, click_errors.UsageError) and error.ctx:
                where = " (" + " ".join(["asg-optimizer", *error.ctx.command_path.split()[1:]]) + ")"
            typer.echo(f"error: {message}{where}", err=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _given(args: list[str], error: Any) -> str | None:
    """The value the operator typed for the option a BadParameter names (`--limit zero`, `--limit=zero`)."""
    for name in getattr(error.param, "opts", []) or []:
        for i, arg in enumerate(args):
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


app = typer.Typer(no_args_is_help=True, help="Keep opted-in Auto Scaling Groups on spot, safely.",
                  pretty_exceptions_enable=False, cls=OneLineErrors)


@app.callback()
def main(
    ctx: typer.Context,
    region: Annotated[list[str] | None, typer.Option(
        "--region", help="AWS region (default: your profile's or AWS_REGION); assess, status, plan, executions and "
                         "local serve take it several times.")] = None,
    profile: str | None = typer.Option(None, "--profile", help="AWS profile from ~/.aws/config."),
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url",
        help="Send every call here instead of AWS, e.g. http://127.0.0.1:4566 for `local serve` "
             "(default: AWS_ENDPOINT_URL)."),
    output: Annotated[Output, typer.Option(
        "--output", "-o", help="table, json, or csv (assess, status, plan, executions).")] = Output.table,
    state_machine_arn: str | None = typer.Option(
        None, "--state-machine-arn",
        help="The replacement state machine (default: the one named <prefix>-replace-instance)."),
    prefix: str = typer.Option(DEFAULT_PREFIX, "--prefix", envvar="ASG_OPTIMIZER_PREFIX",
                               help="Name prefix the stack was deployed with."),
) -> None:
    """Keep opted-in Auto Scaling Groups on spot, safely."""
    regions = list(dict.fromkeys(region or []))
    command = ctx.invoked_subcommand or ""
    if len(regions) > 1 and command not in MERGING:
        raise fail(f"--region given {len(regions)} times ({', '.join(regions)}): `{command}` works in one region; "
                   f"only {', '.join(c for c in MERGING if c != 'local')} and local serve take several")
    if output is Output.csv and command not in CSV_COMMANDS:
        raise fail(f"-o csv: `{command}` prints no rows to put in CSV; use -o table or -o json (csv: "
                   f"{', '.join(CSV_COMMANDS)})")
    ctx.obj = Settings(Target(region=regions[0] if regions else None, profile=profile, endpoint_url=endpoint_url,
                              state_machine=state_machine_arn, prefix=prefix), output, regions)


app.command("assess")(assess.assess_fleet)
app.command()(status.status)
app.command()(plan.plan)
app.command()(replace.replace)
app.command("executions")(executions.list_executions)
app.command()(executions.show)
app.command()(sweep.sweep)
app.command()(pause.pause)
app.command()(pause.resume)
app.command()(commitments.commitments)
app.add_typer(local.app, name="local")
app.add_typer(rollout.app, name="rollout")


@app.command()
def demo(ctx: typer.Context,
         json_output: bool = typer.Option(False, "--json", help="Print the result as one JSON object (as -o json).")
         ) -> None:
    """Build a demo fleet in the embedded AWS and swap every eligible on-demand instance to spot."""
    from asg_optimizer.commands.output import settings
    from asg_optimizer.demo.run import run_demo

    if any(k.startswith("AWS_ENDPOINT_URL") for k in os.environ):
        typer.echo("note: AWS_ENDPOINT_URL is ignored: the demo runs on an embedded AWS of its own", err=True)

    report = run_demo(console(), as_json=json_output or settings(ctx).json)
    raise typer.Exit(0 if report.ok else 1)
