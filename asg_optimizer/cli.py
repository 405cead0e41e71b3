"""`asg-optimizer`: the operator CLI (typer + rich)."""

from __future__ import annotations

import typer
from rich.console import Console


def console() -> Console:
    """Full-width tables in a terminal; 120 columns when piped (CI logs, files), instead of rich's 80."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=120)


app = typer.Typer(no_args_is_help=True, help="Keep opted-in Auto Scaling Groups on spot, safely.")


@app.callback()
def main() -> None:
    """Keep opted-in Auto Scaling Groups on spot, safely."""


@app.command()
def demo(json_output: bool = typer.Option(False, "--json", help="Print the result as one JSON object.")) -> None:
    """Build a demo fleet in the embedded AWS and swap every eligible on-demand instance to spot."""
    from asg_optimizer.demo import run_demo

    report = run_demo(console(), as_json=json_output)
    raise typer.Exit(0 if report.ok else 1)
