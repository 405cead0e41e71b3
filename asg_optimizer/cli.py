"""`asg-optimizer`: the operator CLI (typer + rich). The global options say where AWS is; the commands live in
asg_optimizer.commands, one module per command group."""

from __future__ import annotations

import os
import warnings
from typing import Annotated

import typer

from asg_optimizer.aws_session import Target
from asg_optimizer.commands import executions, local, plan, replace, status, sweep
from asg_optimizer.commands.output import Output, Settings, console
from stack.description import DEFAULT_PREFIX

__all__ = ["app", "console"]

app = typer.Typer(no_args_is_help=True, help="Keep opted-in Auto Scaling Groups on spot, safely.",
                  pretty_exceptions_enable=False)


@app.callback()
def main(
    ctx: typer.Context,
    region: str | None = typer.Option(None, "--region", help="AWS region (default: your profile's or AWS_REGION)."),
    profile: str | None = typer.Option(None, "--profile", help="AWS profile from ~/.aws/config."),
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url",
        help="Send every call here instead of AWS, e.g. http://127.0.0.1:4566 for `local serve` "
             "(default: AWS_ENDPOINT_URL)."),
    output: Annotated[Output, typer.Option("--output", "-o", help="table or json.")] = Output.table,
    state_machine_arn: str | None = typer.Option(
        None, "--state-machine-arn",
        help="The replacement state machine (default: the one named <prefix>-replace-instance)."),
    prefix: str = typer.Option(DEFAULT_PREFIX, "--prefix", envvar="ASG_OPTIMIZER_PREFIX",
                               help="Name prefix the stack was deployed with."),
) -> None:
    """Keep opted-in Auto Scaling Groups on spot, safely."""
    ctx.obj = Settings(Target(region=region, profile=profile, endpoint_url=endpoint_url,
                              state_machine=state_machine_arn, prefix=prefix), output)


app.command()(status.status)
app.command()(plan.plan)
app.command()(replace.replace)
app.command("executions")(executions.list_executions)
app.command()(executions.show)
app.command()(sweep.sweep)
app.add_typer(local.app, name="local")


@app.command()
def demo(json_output: bool = typer.Option(False, "--json", help="Print the result as one JSON object.")) -> None:
    """Build a demo fleet in the embedded AWS and swap every eligible on-demand instance to spot."""
    from asg_optimizer.demo.run import run_demo

    # The handlers' metrics are CloudWatch EMF lines on stdout in Lambda; in the demo they would bury the table.
    # Disabled metrics are never flushed, so Powertools warns when the next invocation sets its dimension again.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    warnings.filterwarnings("ignore", message="Dimension .* has already been added")
    report = run_demo(console(), as_json=json_output)
    raise typer.Exit(0 if report.ok else 1)
