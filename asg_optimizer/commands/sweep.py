"""`asg-optimizer sweep`: run the deployed orphan/repair sweep now instead of waiting for its schedule."""

from __future__ import annotations

import typer

from asg_optimizer.commands.output import console, operator_command, print_json, settings
from tasks.core.plural import counted

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
    actions, left = result.get("actions", []), result.get("left", [])
    for line in [*actions, *left]:
        out.print(f"- {line}", markup=False, highlight=False)
    terminated, repaired = result.get("terminated", []), result.get("repaired", [])
    if not actions:
        out.print("Nothing to do: no orphaned spot instance, no group left held"
                  + (f" ({counted(len(left), 'young spot')} in no group left for now)." if left else "."))
    else:
        out.print(f"{counted(len(terminated), 'orphaned spot instance')} terminated, "
                  f"{counted(len(repaired), 'group')} repaired.")
