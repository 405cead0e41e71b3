"""The regions a command reads: the global `--region` (given once or several times), or `--all-regions`. Commands
that merge regions (assess, status, plan, executions) take every one; the others work in one region and refuse a
second `--region` (cli.py)."""

from __future__ import annotations

import dataclasses

import typer

from asg_optimizer.aws_session import CliError, Target
from asg_optimizer.commands.output import Settings

# Commands that read several regions and merge them (`local` serves each region given).
MERGING = ("assess", "status", "plan", "executions", "local")


def in_region(target: Target, region: str) -> Target:
    """The same target (profile, endpoint, prefix) in another region, with sessions and clients of its own."""
    return dataclasses.replace(target, region=region, _session=None, _clients={}, _state_machine_arn=None,
                               _machines=None)


def enabled_regions(target: Target) -> list[str]:
    """Every region enabled in the account (DescribeRegions, in the target's region)."""
    return sorted(r["RegionName"] for r in target.client("ec2").describe_regions()["Regions"])


def targets(options: Settings, all_regions: bool, *, need_stack: bool = True) -> list[Target]:
    """One target per region to read: each `--region` given (the first is the global target itself), or with
    `--all-regions` every enabled region (those where the stack is deployed, when `need_stack`; the others are
    named in one note on stderr). A region named by hand without the stack fails as a single region does."""
    target = options.target
    if all_regions and len(options.regions) > 1:
        raise CliError("--all-regions and several --region: give one or the other")
    if options.target.state_machine and (all_regions or len(options.regions) > 1):
        raise CliError("--state-machine-arn names one state machine in one region: give one --region with it")
    if not all_regions:
        return [target] + [in_region(target, r) for r in options.regions[1:]]
    every = [in_region(target, r) for r in enabled_regions(target)]
    if not need_stack:
        return every
    deployed = [t for t in every if t.state_machine_name in t.machines()]
    if not deployed:
        raise CliError(f"no deployed state machine {target.state_machine_name} in any of the {len(every)} regions "
                       "enabled in the account: deploy the stack (`pulumi up`), or pass --prefix to find yours")
    if len(deployed) < len(every):
        typer.echo(f"note: the stack is deployed in {len(deployed)} of {len(every)} enabled regions: "
                   f"{', '.join(t.region_name for t in deployed)}", err=True)
    return deployed
