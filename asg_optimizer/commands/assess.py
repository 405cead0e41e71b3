"""`asg-optimizer assess`: before anyone opts in, every group of the account's regions: could it be opted in (or
why not), its on-demand count, what swapping them would save at today's spot prices, and tags that look like a
mistyped opt-in or policy. Reads only, through the same tasks/aws readers the functions use, on the CLI's session.

Compatible types: the instance's own type and the exact types the group's AllowedTypes names (a simplification:
the swap itself also considers same-size types of other families, so the real saving can only be larger).
Priced as Linux/UNIX (DescribeInstances' platform is not read here yet)."""

from __future__ import annotations

import csv
import io
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from asg_optimizer.aws_session import Target
from asg_optimizer.commands import regions
from asg_optimizer.commands.output import Output, console, operator_command, print_json, settings
from tasks.aws.clients import clients_from
from tasks.aws.groups import every_group, group_from_response, lifecycle_hooks
from tasks.aws.instances import instances_by_id
from tasks.aws.prices import NoOnDemandPrice, PriceBook
from tasks.core.assessment import BLOCKED, HOURS_PER_MONTH, GroupAssessment, assess, blockers, by_saving, saving_of
from tasks.core.model import Group
from tasks.core.plural import counted
from tasks.core.policy import PolicyError, parse_policy
from tasks.core.prices import LINUX

CSV_FIELDS = ("region", "asg_name", "status", "on_demand", "spot", "hourly_saving", "monthly_saving", "unpriced",
              "why_not", "misconfigured")


def compatible_types(group: Group) -> dict[str, tuple[str, ...]]:
    """Each member type -> the types that could replace it (its own, plus AllowedTypes' exact names)."""
    try:
        allowed = parse_policy(group.name, group.tags, default_grace_period=0).allowed_types
    except PolicyError:
        allowed = ()
    named = tuple(t for t in allowed if not set("*?[") & set(t))
    return {m.instance_type: tuple(dict.fromkeys((m.instance_type, *named))) for m in group.members}


def assess_region(target: Target) -> list[GroupAssessment]:
    """Every group in the target's region (one paginated read; one DescribeLifecycleHooks per group; one
    DescribeSpotPriceHistory per zone)."""
    region = target.region_name
    with clients_from(target.client):
        raw_groups = every_group()
        groups = [group_from_response(g) for g in raw_groups]
        instances = instances_by_id(m.instance_id for g in groups for m in g.members)
        book = PriceBook(region, LINUX)
        compatible = {g.name: compatible_types(g) for g in groups}
        types = {t for c in compatible.values() for ts in c.values() for t in ts}
        on_demand = {}
        for instance_type in sorted(types):
            try:
                on_demand[instance_type] = book.on_demand(instance_type).price
            except NoOnDemandPrice:
                continue
        zones: dict[str, set[str]] = {}
        for g in groups:
            for m in g.members:
                zones.setdefault(m.availability_zone, set()).update(compatible[g.name][m.instance_type])
        spot = {(t, zone): price for zone, wanted in sorted(zones.items())
                for t, price in book.spot_prices(wanted, zone).items()}
        found = []
        for raw, g in zip(raw_groups, groups, strict=True):
            members = [instances[m.instance_id] for m in g.members if m.instance_id in instances]
            distribution = (raw.get("MixedInstancesPolicy") or {}).get("InstancesDistribution") or {}
            percentage = distribution.get("OnDemandPercentageAboveBaseCapacity") if distribution else None
            why = blockers(g, lifecycle_hooks(g.name), percentage, raw.get("LaunchConfigurationName"))
            saving, unpriced = saving_of(members, on_demand, spot, compatible[g.name])
            found.append(assess(g, region, members, why, saving, unpriced))
    return found


def as_dict(a: GroupAssessment) -> dict[str, Any]:
    return {"region": a.region, "asg_name": a.asg_name, "status": a.status, "on_demand": a.on_demand,
            "spot": a.spot, "hourly_saving": a.hourly_saving, "monthly_saving": a.monthly_saving,
            "unpriced": a.unpriced, "why_not": list(a.why_not), "misconfigured": list(a.misconfigured)}


def render(found: list[GroupAssessment]) -> Table:
    hourly = round(sum(a.hourly_saving for a in found), 4)
    table = Table(title="Assessment: what opting in would save, biggest first", title_justify="left")
    for column, justify in (("region", "left"), ("ASG", "left"), ("status", "left"), ("od", "right"),
                            ("spot", "right"), ("saving/h", "right"), ("saving/month", "right")):
        table.add_column(column, no_wrap=True, justify=justify)  # type: ignore[arg-type]
    table.add_column("why not / misconfigured", overflow="fold")
    ready = sum(1 for a in found if a.status != BLOCKED)
    table.add_row("", counted(len(found), "group"), f"{ready} not blocked", str(sum(a.on_demand for a in found)),
                  str(sum(a.spot for a in found)), f"${hourly:,.4f}", f"${hourly * HOURS_PER_MONTH:,.2f}", "",
                  style="bold")
    table.add_section()
    for a in found:
        notes = "; ".join([*a.why_not, *a.misconfigured] + ([f"{a.unpriced} unpriced"] if a.unpriced else []))
        style = {"blocked": "red", "ready": "green"}.get(a.status, "")
        table.add_row(a.region, escape(a.asg_name), f"[{style}]{a.status}[/]" if style else a.status,
                      str(a.on_demand), str(a.spot), f"${a.hourly_saving:,.4f}", f"${a.monthly_saving:,.2f}",
                      escape(notes))
    return table


def as_csv(found: list[GroupAssessment]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for a in found:
        row = as_dict(a)
        row["why_not"], row["misconfigured"] = "; ".join(a.why_not), "; ".join(a.misconfigured)
        writer.writerow(row)
    return buffer.getvalue()


@operator_command
def assess_fleet(
    ctx: typer.Context,
    all_regions: bool = typer.Option(False, "--all-regions", help="Every region enabled in the account (or give "
                                                                   "--region several times)."),
) -> None:
    """Before opting in: every group, whether it could be opted in or why not, its on-demand count and the saving
    at today's spot prices, biggest first; near-miss tags with a did-you-mean. Changes nothing."""
    options = settings(ctx)
    targets = regions.targets(options, all_regions, need_stack=False)
    found = by_saving(a for target in targets for a in assess_region(target))
    if options.output is Output.csv:
        typer.echo(as_csv(found), nl=False)
    elif options.json:
        hourly = round(sum(a.hourly_saving for a in found), 4)
        print_json({"regions": [t.region_name for t in targets], "groups": [as_dict(a) for a in found],
                    "fleet": {"groups": len(found), "on_demand": sum(a.on_demand for a in found),
                              "hourly_saving": hourly, "monthly_saving": round(hourly * HOURS_PER_MONTH, 2)}})
    elif not found:
        console().print("No Auto Scaling group found.")
    else:
        console().print(render(found))
