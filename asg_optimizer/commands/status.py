"""`asg-optimizer status`: every opted-in group at a glance: sizes, on-demand vs spot, its policy as the scanner
reads it (defaults filled in), swaps in flight, the last swap's outcome, and what the fleet costs per hour."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from asg_optimizer.aws_session import Target
from asg_optimizer.commands import regions
from asg_optimizer.commands.commitments import paid_by_commitments, read_fleet
from asg_optimizer.commands.execution_view import status_text
from asg_optimizer.commands.output import (
    ago,
    console,
    matching,
    now,
    operator_command,
    print_csv,
    print_json,
    settings,
)
from asg_optimizer.commands.pause import pauses
from asg_optimizer.hourly_cost import PriceSheet, price_instances
from asg_optimizer.inventory import executions, instances, is_spot, opted_in_groups
from asg_optimizer.timeline import json_object, not_swapped_why, outcome_of, readable_cause
from tasks.aws.instances import instance_from_response
from tasks.core.naming import belongs_to
from tasks.core.pause import Pause
from tasks.core.plural import counted
from tasks.core.policy import Policy, PolicyError, parse_policy
from tasks.core.rollout import behind

# How far back `status` looks for each group's last finished swap: ListExecutions has no per-group filter.
LAST_SWAP_LOOKBACK = 1000


@dataclass
class GroupStatus:
    name: str
    desired: int
    min_size: int
    max_size: int
    instance_ids: list[str]
    on_demand: int
    spot: int
    policy: Policy | None
    policy_error: str | None
    in_flight: list[str] = field(default_factory=list)
    last_swap: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    behind: list[str] = field(default_factory=list)  # instances on an older template version or AMI
    launches: str | None = None  # what the group launches now: "version N (ami-...)"
    paused: str | None = None  # why nothing new starts in the group (the fleet's pause or its own alarms)
    region: str | None = None  # set when status reads several regions

    @property
    def below_floor(self) -> bool:
        """Fewer on-demand than the policy keeps (a forced manual swap, or instances someone else removed): the
        scanner and Validate swap none of its on-demand until it is back above."""
        return self.policy is not None and self.on_demand < self.policy.on_demand_floor(self.desired)


def describe_policy(policy: Policy, desired: int) -> str:
    """The policy in one line, every default spelled out."""
    floor = policy.on_demand_floor(desired)
    kept = f"keep {floor} on-demand"
    if policy.min_on_demand or policy.min_on_demand_percent:
        kept += f" (min {policy.min_on_demand}, {policy.min_on_demand_percent}%)"
    parts = [
        kept,
        f"{policy.max_parallel} at a time",
        f"grace {policy.grace_period}s",
        f"types {','.join(policy.allowed_types) or 'any'}"
        + (f" but {','.join(policy.denied_types)}" if policy.denied_types else ""),
        f"hours {policy.window}" if policy.window else "any hour",
    ]
    return ", ".join(parts)


def compact_policy(policy: Policy, desired: int) -> str:
    """The policy in a few words, for one line per group: `keep 1 od, 2 at once, m5.*, 22-06`."""
    parts = [f"keep {policy.on_demand_floor(desired)} od", f"{policy.max_parallel} at once"]
    types = ",".join(policy.allowed_types) or "any type"
    if policy.denied_types:
        types += " but " + ",".join(policy.denied_types)
    parts.append(types)
    if policy.grace_period:
        parts.append(f"grace {policy.grace_period}s")
    if policy.window:
        parts.append(str(policy.window))
    return ", ".join(parts)


class Sort(StrEnum):
    name = "name"
    saving = "saving"
    on_demand = "on-demand"


def sort_statuses(statuses: list[GroupStatus], prices: PriceSheet, by: Sort) -> list[GroupStatus]:
    """By name; or the biggest hourly saving (or most on-demand instances) first, ties by name."""
    if by is Sort.saving:
        return sorted(statuses, key=lambda s: (-prices.totals(s.instance_ids)[1], s.name, s.region or ""))
    if by is Sort.on_demand:
        return sorted(statuses, key=lambda s: (-s.on_demand, s.name, s.region or ""))
    return sorted(statuses, key=lambda s: (s.name, s.region or ""))


def policy_dict(policy: Policy, desired: int) -> dict[str, Any]:
    return {
        "min_on_demand": policy.min_on_demand,
        "min_on_demand_percent": policy.min_on_demand_percent,
        "on_demand_floor": policy.on_demand_floor(desired),
        "max_parallel": policy.max_parallel,
        "grace_period": policy.grace_period,
        "allowed_types": list(policy.allowed_types),
        "denied_types": list(policy.denied_types),
        "window": str(policy.window) if policy.window else None,
    }


def _last_swaps(target: Target, names: list[str]) -> dict[str, dict[str, Any]]:
    """The newest finished execution per group, a swap or an interruption fallback, from one newest-first
    listing of both read until every group has one."""
    found: dict[str, dict[str, Any]] = {}
    for seen, execution in enumerate(executions(target)):
        if seen >= LAST_SWAP_LOOKBACK or len(found) == len(names):
            break
        if execution["status"] == "RUNNING":
            continue
        for name in names:
            if name not in found and belongs_to(execution["name"], name):
                found[name] = execution
    sfn = target.client("stepfunctions")
    result = {}
    for name, execution in found.items():
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        output = json_object(described.get("output"))
        outcome = outcome_of(described["status"], output, execution["kind"])
        result[name] = {
            "name": execution["name"], "kind": execution["kind"],
            "trigger": json_object(described.get("input")).get("reason"),
            "status": execution["status"], "stopped": execution.get("stopDate"),
            "outcome": outcome, "error": described.get("error"),
            "cause": readable_cause(described.get("cause")) or None, "why": not_swapped_why(outcome, output),
            "reason": output.get("reason") if outcome == "refused" else None,
        }
    return result


def launched_versions(target: Target, raw_groups: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """Group name -> (the template version it launches now, that version's AMI): `$Latest`/`$Default` resolved,
    one DescribeLaunchTemplateVersions per distinct template and version."""
    ec2 = target.client("ec2")
    found: dict[str, tuple[str, str | None]] = {}
    cache: dict[tuple[str, str], tuple[str, str | None] | None] = {}
    for raw in raw_groups:
        spec = raw.get("LaunchTemplate") or (raw.get("MixedInstancesPolicy") or {}).get("LaunchTemplate", {}).get(
            "LaunchTemplateSpecification")
        if not spec or not spec.get("LaunchTemplateId"):
            continue
        key = (spec["LaunchTemplateId"], spec.get("Version") or "$Default")
        if key not in cache:
            versions = ec2.describe_launch_template_versions(LaunchTemplateId=key[0], Versions=[key[1]])[
                "LaunchTemplateVersions"]
            cache[key] = ((str(versions[0]["VersionNumber"]), versions[0].get("LaunchTemplateData", {}).get("ImageId"))
                          if versions else None)
        launches = cache[key]
        if launches:
            found[raw["AutoScalingGroupName"]] = launches
    return found


def gather(target: Target, patterns: list[str] | None = None, *, strict: bool = True
           ) -> tuple[list[GroupStatus], PriceSheet]:
    """The opted-in groups (those `patterns` match, if given), their instances, executions and prices. `strict`:
    a pattern that matches no group is an error (one region); else the caller checks across regions."""
    raw_groups = opted_in_groups(target)
    if patterns:
        names = [g["AutoScalingGroupName"] for g in raw_groups]
        wanted = set(matching(names, patterns, f"opted-in ASG in {target.region_name}") if strict else
                     [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)])
        raw_groups = [g for g in raw_groups if g["AutoScalingGroupName"] in wanted]
    member_ids = [i["InstanceId"] for g in raw_groups for i in g.get("Instances", [])]
    found = instances(target, member_ids)
    running = [e["name"] for e in executions(target, "RUNNING")]
    statuses = []
    for raw in raw_groups:
        name = raw["AutoScalingGroupName"]
        ids = [i["InstanceId"] for i in raw.get("Instances", [])]
        spot = sum(1 for i in ids if i in found and is_spot(found[i]))
        tags = {t["Key"]: t.get("Value", "") for t in raw.get("Tags", [])}
        policy, problem = None, None
        try:
            policy = parse_policy(name, tags, default_grace_period=int(raw.get("HealthCheckGracePeriod", 0)))
        except PolicyError as error:
            problem = str(error)
        statuses.append(GroupStatus(
            name=name, desired=raw["DesiredCapacity"], min_size=raw["MinSize"], max_size=raw["MaxSize"],
            instance_ids=ids, on_demand=len(ids) - spot, spot=spot, policy=policy, policy_error=problem,
            in_flight=sorted(n for n in running if belongs_to(n, name)), tags=tags,
        ))
    launches = launched_versions(target, raw_groups)
    for status, raw in zip(statuses, raw_groups, strict=True):
        now_launching = launches.get(raw["AutoScalingGroupName"])
        if now_launching:
            version, image = now_launching
            status.launches = f"version {version} ({image})" if image else f"version {version}"
            status.behind = behind([instance_from_response(found[i]) for i in status.instance_ids if i in found],
                                   version, image)
    last = _last_swaps(target, [s.name for s in statuses])
    for status in statuses:
        status.last_swap = last.get(status.name)
    return statuses, price_instances(target, {i: found[i] for i in member_ids if i in found})


def _money(value: float, missing: list[str]) -> str:
    return f"${value:,.4f}" + ("+?" if missing else "")


def _last_swap_text(last: dict[str, Any] | None, at: datetime) -> str:
    if last is None:
        return "-"
    text = f"{escape(last['trigger'] or last['kind'])} {status_text(last['status'], last['outcome'])}"
    if last["error"] or last.get("reason"):
        text += f" {escape(last['error'] or last['reason'])}"
    return f"{text} {ago(last['stopped'], at)}"


def render_table(statuses: list[GroupStatus], prices: PriceSheet, at: datetime, region: str,
                 fleet: Pause | None = None, width: int = 120, fleets: dict[str, Pause | None] | None = None
                 ) -> Table:
    """One line per group, totals first. Cells never wrap (a long one ends in …); the numbers keep their full
    width and the rest is shared by name, policy and last activity, so a long ASG name squeezes nothing else."""
    cost, saving, missing = prices.totals(i for s in statuses for i in s.instance_ids)
    rows = [[counted(len(statuses), "group"), str(sum(s.desired for s in statuses)),
             str(sum(s.on_demand for s in statuses)), str(sum(s.spot for s in statuses)), _below_floor_count(statuses),
             str(sum(len(s.in_flight) for s in statuses)), "", _money(cost, missing), _money(saving, missing)]]
    for s in statuses:
        cost, saving, missing = prices.totals(s.instance_ids)
        if s.policy is None:
            policy = f"[red]malformed policy: {escape(_bad_tag(s.policy_error or ''))}[/]"
        else:
            policy = escape(compact_policy(s.policy, s.desired))
            if s.below_floor:
                policy = f"[bold red]BELOW FLOOR {s.on_demand}/{s.policy.on_demand_floor(s.desired)}[/]; {policy}"
        shown = fleets.get(s.region or "") if fleets is not None else fleet
        if s.paused and (shown is None or s.paused != shown.why):  # the fleet's pause is printed once, above
            policy = f"[bold yellow]{escape(s.paused)}[/]; {policy}"
        if s.behind:  # what a rollout would replace
            policy = f"[yellow]{counted(len(s.behind), 'instance')} behind {escape(s.launches or '')}[/]; {policy}"
        rows.append([escape(s.name), f"{s.desired} ({s.min_size}-{s.max_size})", str(s.on_demand), str(s.spot),
                     policy, str(len(s.in_flight)), _last_swap_text(s.last_swap, at), _money(cost, missing),
                     _money(saving, missing)])
    headers = ["ASG", "desired", "od", "spot", "policy", "in flight", "last activity", "$/h", "saving/h"]
    flexible = (0, 4, 6)
    if any(s.region for s in statuses):  # several regions: which one each group is in, after its name
        headers.insert(1, "region")
        rows = [[row[0], "" if i == 0 else statuses[i - 1].region or "", *row[1:]] for i, row in enumerate(rows)]
        flexible = (0, 5, 7)
    widths = column_widths(headers, rows, flexible=flexible, width=width)
    table = Table(title=f"Opted-in Auto Scaling groups in {region}", title_justify="left")
    for index, (header, size) in enumerate(zip(headers, widths, strict=True)):
        table.add_column(header, no_wrap=True, overflow="ellipsis", width=size,
                         justify="left" if index in flexible or header == "region" else "right")
    table.add_row(*rows[0], style="bold")
    table.add_section()
    for row in rows[1:]:
        table.add_row(*row)
    return table


def column_widths(headers: list[str], rows: list[list[str]], flexible: tuple[int, ...], width: int) -> list[int]:
    """Every other column as wide as its widest cell; the flexible ones share what is left of `width` (each at
    most its widest cell; the first, the name, at most a third of it)."""
    natural = [max([Text.from_markup(r[i]).cell_len for r in rows] + [len(h)]) for i, h in enumerate(headers)]
    left = width - (3 * len(headers) + 1) - sum(w for i, w in enumerate(natural) if i not in flexible)
    widths = list(natural)
    if sum(natural[i] for i in flexible) <= left:
        return widths
    share = max(left, 3 * len(flexible))
    name = min(natural[flexible[0]], max(10, share // 3))
    rest = list(flexible[1:])
    remaining = max(share - name, 3 * len(rest))
    for i in rest:
        widths[i] = 0
    # water-fill: each flexible column gets up to its natural width, the surplus of a short one going to the others
    pending = sorted(rest, key=lambda i: natural[i])
    while pending:
        fair = remaining // len(pending)
        i = pending.pop(0)
        widths[i] = max(3, min(natural[i], fair))
        remaining -= widths[i]
    widths[flexible[0]] = min(natural[flexible[0]], name + max(0, remaining))
    return widths


def _below_floor_count(statuses: list[GroupStatus]) -> str:
    below = sum(1 for s in statuses if s.below_floor)
    return f"[bold red]{below} below floor[/]" if below else ""


def _bad_tag(error: str) -> str:
    """`AsgOptimiser:MaxParallel='two'` out of a PolicyError's message (the whole message is a note below)."""
    found = error.split("tag ", 1)[-1].split(" is malformed", 1)[0]
    return found if found != error else error


def as_json(statuses: list[GroupStatus], prices: PriceSheet, region: str, fleet: Pause | None = None,
            paid: float = 0.0) -> dict[str, Any]:
    groups = []
    for s in statuses:
        last = dict(s.last_swap) if s.last_swap else None
        if last and last["stopped"] is not None:
            last["stopped"] = last["stopped"].isoformat()
        cost, saving, missing = prices.totals(s.instance_ids)
        groups.append({
            "asg_name": s.name, "desired": s.desired, "min_size": s.min_size, "max_size": s.max_size,
            "on_demand": s.on_demand, "spot": s.spot,
            "policy": policy_dict(s.policy, s.desired) if s.policy else None, "policy_error": s.policy_error,
            "below_floor": s.below_floor, "paused": s.paused, "launches": s.launches, "behind": s.behind,
            "in_flight": s.in_flight, "last_swap": last,
            "hourly_cost": cost, "hourly_saving": saving, "unpriced": missing,
        })
    cost, saving, missing = prices.totals(i for s in statuses for i in s.instance_ids)
    return {
        "region": region,
        "paused": fleet.why if fleet else None,
        "groups": groups,
        "fleet": {"groups": len(statuses), "on_demand": sum(s.on_demand for s in statuses),
                  "spot": sum(s.spot for s in statuses), "in_flight": sum(len(s.in_flight) for s in statuses),
                  "hourly_cost": cost, "hourly_saving": saving,
                  # spot prices + uncovered on-demand: covered on-demand at $0 marginal (docs/commitments.md)
                  "commitment_aware_hourly_cost": round(cost - paid, 4), "paid_by_commitments_per_hour": paid,
                  "unpriced": {i: prices.unpriced.get(i, "not found in EC2") for i in missing}},
        "prices": {"on_demand": f"bundled snapshot of {prices.snapshot_as_of}"
                                + (", Pricing API for " + ", ".join(sorted(set(prices.pricing_api_types)))
                                   if prices.pricing_api_types else ""),
                   "spot": "DescribeSpotPriceHistory, the price in force per pool"},
    }


@dataclass
class RegionStatus:
    """What status read in one region."""

    region: str
    statuses: list[GroupStatus]
    prices: PriceSheet
    fleet: Pause | None
    paid: float


def read_region(target: Target, asg: list[str] | None, at: datetime, *, strict: bool = True) -> RegionStatus:
    target.state_machine_arn()  # fail early, before reading the fleet, when the stack is not there
    statuses, prices = gather(target, asg, strict=strict)
    fleet, per_group = pauses(target, {s.name: s.tags for s in statuses}, at)
    for s in statuses:
        s.paused = per_group[s.name].why if s.name in per_group else None
    paid = paid_by_commitments(read_fleet(target)[2], [i for s in statuses for i in s.instance_ids])
    return RegionStatus(target.region_name, statuses, prices, fleet, paid)


def merged(found: list[RegionStatus]) -> tuple[list[GroupStatus], PriceSheet]:
    """Every region's groups (each marked with its region) and one price sheet (instance ids are unique)."""
    statuses: list[GroupStatus] = []
    prices = PriceSheet(snapshot_as_of=found[0].prices.snapshot_as_of)
    for part in found:
        for s in part.statuses:
            s.region = part.region
        statuses += part.statuses
        prices.costs |= part.prices.costs
        prices.unpriced |= part.prices.unpriced
        prices.pricing_api_types += part.prices.pricing_api_types
    return statuses, prices


CSV_FIELDS = ("region", "asg_name", "desired", "min_size", "max_size", "on_demand", "spot", "below_floor", "policy",
              "policy_error", "paused", "behind", "launches", "in_flight", "last_activity", "hourly_cost",
              "hourly_saving", "unpriced")


def csv_rows(statuses: list[GroupStatus], prices: PriceSheet, region: str) -> list[dict[str, Any]]:
    rows = []
    for s in statuses:
        cost, saving, missing = prices.totals(s.instance_ids)
        last = s.last_swap
        activity = "" if last is None else " ".join(filter(None, [
            last["trigger"] or last["kind"], last["status"], f"({last['outcome']})" if last["outcome"] else None,
            last["error"] or last.get("reason"), last["stopped"].isoformat() if last["stopped"] else None]))
        rows.append({
            "region": s.region or region, "asg_name": s.name, "desired": s.desired, "min_size": s.min_size,
            "max_size": s.max_size, "on_demand": s.on_demand, "spot": s.spot, "below_floor": s.below_floor,
            "policy": compact_policy(s.policy, s.desired) if s.policy else None, "policy_error": s.policy_error,
            "paused": s.paused, "behind": len(s.behind), "launches": s.launches, "in_flight": len(s.in_flight),
            "last_activity": activity, "hourly_cost": cost, "hourly_saving": saving, "unpriced": len(missing)})
    return rows


@operator_command
def status(
    ctx: typer.Context,
    asg: Annotated[list[str] | None, typer.Option(
        "--asg", metavar="NAME|GLOB", help="Only the groups these names or shell patterns match (repeatable), "
                                           "e.g. --asg 'web-*'.")] = None,
    sort: Annotated[Sort, typer.Option("--sort", help="name, saving (biggest first) or on-demand (most first).")
                    ] = Sort.name,
    all_regions: bool = typer.Option(False, "--all-regions", help="Every enabled region where the stack is deployed, "
                                                                  "merged (or give --region several times)."),
) -> None:
    """Every opted-in ASG on one line: sizes, on-demand vs spot, policy, swaps in flight, last activity, cost and
    saving; totals first. Several regions merge into one table with a region column."""
    options = settings(ctx)
    targets = regions.targets(options, all_regions)
    at = now()
    if len(targets) == 1:
        one = read_region(targets[0], asg, at)
        statuses, prices, fleet, paid, where = one.statuses, one.prices, one.fleet, one.paid, one.region
        fleets: dict[str, Pause | None] | None = None
    else:
        found = [read_region(t, asg, at, strict=False) for t in targets]
        statuses, prices = merged(found)
        if asg:
            matching([s.name for s in statuses], asg, f"opted-in ASG in {', '.join(f.region for f in found)}")
        fleets = {f.region: f.fleet for f in found}
        fleet, paid, where = None, round(sum(f.paid for f in found), 6), ", ".join(f.region for f in found)
    statuses = sort_statuses(statuses, prices, sort)
    if options.csv:
        print_csv(CSV_FIELDS, csv_rows(statuses, prices, where))
        return
    if options.json:
        data = as_json(statuses, prices, where, fleet, paid)
        if fleets is not None:  # several regions: each group says its region, the pause is per region
            data = {"regions": list(fleets), "paused": {r: p.why if p else None for r, p in fleets.items()},
                    **{k: v for k, v in data.items() if k not in ("region", "paused")}}
            for group, s in zip(data["groups"], statuses, strict=True):
                group["region"] = s.region
        print_json(data)
        return
    out = console()
    for region, paused in ((fleets or {}).items() if fleets is not None else [("", fleet)]):
        if paused:
            out.print(f"{region + ': ' if region else ''}{paused.why} (running swaps finish; interruption fallbacks "
                      "still run)", style="bold yellow", markup=False, highlight=False)
    if not statuses:
        out.print(f"No Auto Scaling group in {where} is opted in (tag AsgOptimiser=true).")
        return
    out.print(render_table(statuses, prices, at, where, fleet, out.width, fleets))
    notes = [f"{s.name}{f' ({s.region})' if s.region else ''}: {s.policy_error}" for s in statuses if s.policy_error]
    notes.append(f"Estimated: on-demand prices from the bundled snapshot of {prices.snapshot_as_of}, spot prices in "
                 "force now; saving = on-demand minus spot for the spot instances.")
    if paid:
        cost, _, missing = prices.totals(i for s in statuses for i in s.instance_ids)
        notes.append(f"Commitment-aware: {_money(cost - paid, missing)}/h (Reserved Instances and Savings Plans pay "
                     f"${paid:,.4f}/h of the on-demand; `asg-optimizer commitments` shows which).")
    unpriced = sorted(set(prices.unpriced.values()))
    if unpriced:
        notes.append("Not priced (+?): " + "; ".join(unpriced))
    for note in notes:
        out.print(note, style="dim", markup=False)
