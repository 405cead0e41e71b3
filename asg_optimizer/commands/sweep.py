"""`asg-optimizer sweep`: run the deployed orphan/repair sweep now instead of waiting for its schedule."""

from __future__ import annotations

import typer

from asg_optimizer.commands.output import console, operator_command, print_json, settings

SWEEP = "sweep"


@operator_command
def sweep(ctx: typer.Context) -> None:
    """Terminate orphaned spots and repair groups a crashed swap left held, now; print what was done."""
    options = settings(ctx)
    target = options.target
    result = target.invoke(SWEEP, {})
    if options.json:
        print_json(result)
        return
    out = console()
    actions = result.get("actions", [])
    for line in actions:
        out.print(f"- {line}")
    terminated, repaired = result.get("terminated", []), result.get("repaired", [])
    if not actions:
        out.print("Nothing to do: no orphaned spot instance, no group left held.")
    else:
        out.print(f"{len(terminated)} orphaned spot instances terminated, {len(repaired)} groups repaired.")
