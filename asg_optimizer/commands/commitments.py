"""`asg-optimizer commitments`: each Reserved Instance and Savings Plan with its use now, which on-demand instances the
optimizer keeps because of it, which spots it would return to on-demand, and the idle $/hour before and after.

Decided by the same code as the scanner (tasks.aws.commitments, tasks.core.commitments), read with the CLI's session.
The "would return" list ignores the 15-minute idle rule and the one-at-a-time limit the scanner applies."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from asg_optimizer.aws_session import Target
from asg_optimizer.commands.output import console, operator_command, print_json, settings
from asg_optimizer.inventory import instances, opted_in_groups
from tasks.aws.clients import clients_from
from tasks.aws.commitments import FleetCoverage, fleet_coverage
from tasks.aws.groups import group_from_response
from tasks.aws.instances import instance_from_response
from tasks.aws.prices import snapshot
from tasks.core.commitment_swaps import plan_reverse, spot_facts
from tasks.core.commitments import hourly_cost, short_id
from tasks.core.errors import InvalidInput
from tasks.core.model import Group, Instance
from tasks.core.prices import operating_system, snapshot_price
from tasks.core.settings import CommitmentSettings


def report(fleet: FleetCoverage, groups: list[Any], found: dict[str, Any]) -> dict[str, Any]:
    coverage = fleet.coverage
    idle_before = coverage.idle_per_hour
    rows = [{"id": c.commitment_id, "kind": c.kind, "covers": c.label, "in_use": c.in_use(),
             "capacity": c.capacity, "used": round(c.used, 6), "unit": c.unit, "idle": c.idle,
             "idle_per_hour": c.idle_per_hour} for c in coverage.commitments]
    member_of = {m.instance_id: g.name for g in groups for m in g.members}
    kept = [{"asg_name": member_of[i], "instance_id": i, "why": why} for i in sorted(coverage.instances)
            if i in member_of and (why := coverage.why_kept(i))]
    spots = spot_facts(groups, found, fleet.prices)
    picks, _ = plan_reverse(coverage, spots, idle_since={}, now=0.0, groups_in_flight=(), reverse_in_flight=False,
                            min_idle_seconds=0, max_per_scan=len(spots))
    ours = [i for i in coverage.instances if i in member_of]
    return {"commitments": rows, "kept_on_demand": kept,
            "would_return_to_on_demand": [{"asg_name": p.asg_name, "instance_id": p.instance_id,
                                           "instance_type": p.instance_type, "why": p.why} for p in picks],
            "idle_per_hour_now": idle_before, "idle_per_hour_after": coverage.idle_per_hour,
            "opted_in_on_demand_per_hour": {"list": round(sum(coverage.instances[i].usage.on_demand_price
                                                              for i in ours), 6),
                                            "commitment_aware": hourly_cost(coverage, ours)}}


def table(data: dict[str, Any]) -> Table:
    out = Table(title="Reserved Instances and Savings Plans", title_justify="left")
    for column in ("commitment", "kind", "covers", "in use", "idle $/h"):
        out.add_column(column, no_wrap=column != "covers")
    for row in data["commitments"]:
        out.add_row(short_id(row["id"]), row["kind"], escape(row["covers"]), escape(row["in_use"]),
                    f"${row['idle_per_hour']:.4f}")
    return out


def read_fleet(target: Target) -> tuple[list[Group], dict[str, Instance], FleetCoverage | None]:
    """The opted-in groups, their instances, and the coverage of the region's on-demand usage (None: no
    commitment), read with the CLI's session and priced from the bundled snapshot."""
    groups = [group_from_response(g) for g in opted_in_groups(target)]
    found = {i: instance_from_response(raw) for i, raw in
             instances(target, [m.instance_id for g in groups for m in g.members]).items()}
    region = target.region_name

    def price_of(instance_type: str, platform: str) -> float | None:
        try:
            return snapshot_price(snapshot(), region, instance_type, operating_system(platform))
        except InvalidInput:  # a platform with no price
            return None

    aware = CommitmentSettings()  # the CLI shows what commitments do; the stack setting may still turn them off
    with clients_from(target.client):
        fleet = fleet_coverage(groups, extra_types={i.instance_type for i in found.values() if i.lifecycle == "spot"},
                               settings=aware, region=region, price_of=price_of)
    return groups, found, fleet


def paid_by_commitments(fleet: FleetCoverage | None, instance_ids: list[str]) -> float:
    """$/hour of these instances' on-demand list price that commitments pay (0 without commitments)."""
    if fleet is None:
        return 0.0
    return round(sum(c.usage.on_demand_price * c.fraction for i in instance_ids
                     if (c := fleet.coverage.of(i)) is not None), 6)


@operator_command
def commitments(ctx: typer.Context) -> None:
    """Each RI and Savings Plan: use now, on-demand kept for it, spots it would return, idle $/h before/after."""
    options = settings(ctx)
    target = options.target
    region = target.region_name
    groups, found, fleet = read_fleet(target)
    if fleet is None:
        if options.json:
            print_json({"commitments": [], "region": region})
        else:
            console().print(f"no active Reserved Instances or Savings Plans in {region}")
        return
    data = {"region": region, **report(fleet, groups, found)}
    if options.json:
        print_json(data)
        return
    out = console()
    out.print(table(data))
    for kept in data["kept_on_demand"]:
        out.print(f"{escape(kept['asg_name'])} {kept['instance_id']}: {escape(kept['why'])}")
    for back in data["would_return_to_on_demand"]:
        out.print(f"{escape(back['asg_name'])} {back['instance_id']}: would return: {escape(back['why'])}")
    cost = data["opted_in_on_demand_per_hour"]
    out.print(f"idle commitment: ${data['idle_per_hour_now']:.4f}/h now, ${data['idle_per_hour_after']:.4f}/h after "
              f"returning those spots; opted-in on-demand ${cost['list']:.4f}/h at list price, "
              f"${cost['commitment_aware']:.4f}/h commitment-aware")
