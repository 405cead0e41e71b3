"""Driving the CLI in-process against the embedded AWS, and proving a refused command changed nothing."""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from asg_optimizer import sessions
from asg_optimizer.cli import app
from asg_optimizer.local.embedded import EmbeddedAws

METRICS_OFF = "POWERTOOLS_METRICS_DISABLED"
# The workflow's polls at their fastest that still loop (see tests/conftest.py FAST), as --timing options.
FAST_TIMING = ["--timing", "boot_poll_seconds=2", "--timing", "group_poll_seconds=2",
               "--timing", "boot_max_polls=10", "--timing", "group_max_polls=5"]


def cli(*args: str) -> Result:
    """Run the CLI. The Lambda handlers run in this process too (the seam), and Powertools Metrics prints its EMF
    lines to whatever sys.stdout is: while the CLI's output is captured, they would land in it. In AWS they go to
    the function's own log, so switch them off for the duration."""
    saved = os.environ.get(METRICS_OFF)
    os.environ[METRICS_OFF] = "true"
    try:
        return CliRunner().invoke(app, list(args), catch_exceptions=False)
    finally:
        if saved is None:
            os.environ.pop(METRICS_OFF, None)
        else:
            os.environ[METRICS_OFF] = saved


def cli_json(*args: str) -> Any:
    result = cli("--output", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@functools.cache
def _client(service: str) -> Any:
    """One client per service for the whole run (making one costs ~0.2 s; moto intercepts them all the same)."""
    return sessions.session(region_name="us-east-1").client(service)


def snapshot(aws: EmbeddedAws) -> dict[str, Any]:
    """Everything a command could change: groups (settings, tags, members), instances, executions, functions."""
    groups = _client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    reservations = _client("ec2").describe_instances()["Reservations"]
    sfn = _client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=aws.deployment.replace_arn)["executions"]
    return {
        "groups": {
            g["AutoScalingGroupName"]: {
                "sizes": (g["DesiredCapacity"], g["MinSize"], g["MaxSize"]),
                "suspended": sorted(p["ProcessName"] for p in g["SuspendedProcesses"]),
                "tags": sorted((t["Key"], t["Value"]) for t in g["Tags"]),
                "members": sorted((i["InstanceId"], i["LifecycleState"]) for i in g["Instances"]),
            }
            for g in groups
        },
        "instances": sorted((i["InstanceId"], i["State"]["Name"], i.get("InstanceLifecycle", "on-demand"))
                            for r in reservations for i in r["Instances"]),
        "executions": sorted((e["name"], e["status"]) for e in executions),
        "state_machines": sorted(m["name"] for m in sfn.list_state_machines()["stateMachines"]),
    }


def table_row(output: str, first_cell: str) -> list[str]:
    """The cells of the rich table row starting with `first_cell`, wrapped lines joined back together."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("│") and line.split("│")[1].strip() == first_cell)
    cells = [[c.strip()] for c in lines[start].split("│")[1:-1]]
    for line in lines[start + 1:]:
        parts = line.split("│")[1:-1] if line.startswith("│") else []
        if not parts or parts[0].strip():
            break
        for cell, part in zip(cells, parts, strict=True):
            if part.strip():
                cell.append(part.strip())
    return [" ".join(c for c in cell if c) for cell in cells]


def flat(text: str) -> str:
    """Output with rich's line wrapping undone (every run of whitespace one space)."""
    return " ".join(text.split())
