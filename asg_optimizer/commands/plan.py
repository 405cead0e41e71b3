"""`asg-optimizer plan`: the scanner's own dry run, so what it shows is exactly what the next scheduled scan
would start (same code, same policy parsing, same limits), and why every other instance and group is left alone.
The scanner does not read lifecycle hooks (Validate refuses a hooked group and the scanner then skips it for a
while); the plan asks for the hooks of the groups it would swap in itself, so it names a launch hook first time."""

from __future__ import annotations

import fnmatch
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from asg_optimizer.aws_session import Target
from asg_optimizer.commands import regions
from asg_optimizer.commands.output import console, matching, operator_command, print_csv, print_json, settings
from asg_optimizer.inventory import describe_group
from tasks.aws.clients import clients_from
from tasks.aws.groups import every_group, group_from_response, launch_hook_blocks, named_groups
from tasks.core.plural import counted

GLOB = set("*?[")

SCANNER = "scanner"


def _regional(result: dict[str, Any]) -> bool:
    """A merged plan of several regions: every verdict and skipped group says its region."""
    return "regions" in result


def plan_table(result: dict[str, Any]) -> Table:
    table = Table(title="Instances", title_justify="left")
    regional = _regional(result)
    for column in ("ASG", *(("region",) if regional else ()), "instance", "action"):
        table.add_column(column, no_wrap=True)
    table.add_column("why", overflow="fold")
    rows = sorted(result.get("plan", []), key=lambda v: (v["asg_name"], v.get("region", ""),
                                                          v["action"] != "replace", v["instance_id"]))
    for verdict in rows:
        action = "[green]replace[/]" if verdict["action"] == "replace" else "[dim]skip[/]"
        table.add_row(escape(verdict["asg_name"]), *((verdict["region"],) if regional else ()),
                      verdict["instance_id"], action, escape(verdict["why"]))
    return table


def grouped_table(result: dict[str, Any]) -> Table:
    """The fleet plan, one line per group: how many would be replaced and which, and why the rest stay (each
    reason once, counted)."""
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for verdict in result.get("plan", []):
        by_group.setdefault((verdict["asg_name"], verdict.get("region", "")), []).append(verdict)
    regional = _regional(result)
    table = Table(title="Groups", title_justify="left")
    table.add_column("ASG", no_wrap=True, overflow="ellipsis", max_width=40)
    if regional:
        table.add_column("region", no_wrap=True)
    table.add_column("replace", justify="right", no_wrap=True)
    table.add_column("skip", justify="right", no_wrap=True)
    table.add_column("what and why", no_wrap=True, overflow="ellipsis")
    for name, region in sorted(by_group):
        verdicts = by_group[name, region]
        picks = sorted(v["instance_id"] for v in verdicts if v["action"] == "replace")
        reasons: dict[str, int] = {}
        for v in verdicts:
            if v["action"] != "replace":
                short = v["why"].split(" (", 1)[0]
                reasons[short] = reasons.get(short, 0) + 1
        parts = [f"replace {', '.join(picks)}"] if picks else []
        parts += [f"{why} x{count}" if count > 1 else why for why, count in sorted(reasons.items())]
        table.add_row(escape(name), *((region,) if regional else ()), str(len(picks)), str(len(verdicts) - len(picks)),
                      escape("; ".join(parts)))
    return table


def expand(target: Target, names: list[str]) -> list[str]:
    """Names as given; a shell pattern (`web-*`) becomes the groups in the region it matches (one line naming
    a name or pattern that finds nothing)."""
    expanded: list[str] = []
    every: list[str] = []
    if any(GLOB & set(n) for n in names):
        with clients_from(target.client):
            every = sorted(g["AutoScalingGroupName"] for g in every_group())
    for name in names:
        if GLOB & set(name):
            expanded += matching(every, [name], f"ASG in {target.region_name}")
        else:
            describe_group(target, name)
            expanded.append(name)
    return list(dict.fromkeys(expanded))


def with_launch_hooks(target: Target, result: dict[str, Any]) -> dict[str, Any]:
    """The dry run's plan less the groups whose launch hook Validate would refuse (one DescribeLifecycleHooks per
    group with a pick, on the CLI's credentials), each left alone naming its hook."""
    picked = sorted({v["asg_name"] for v in result.get("plan", []) if v["action"] == "replace"})
    if not picked:
        return result
    with clients_from(target.client):
        blocked = launch_hook_blocks(group_from_response(g) for g in named_groups(picked))
    if not blocked:
        return result
    return {**result, "plan": [v for v in result.get("plan", []) if v["asg_name"] not in blocked],
            "skipped_groups": [*result.get("skipped_groups", []),
                               *({"asg_name": name, "why": why} for name, why in sorted(blocked.items()))]}


def skipped_table(result: dict[str, Any]) -> Table:
    regional = _regional(result)
    table = Table(title="Groups left alone", title_justify="left")
    table.add_column("ASG", no_wrap=True)
    if regional:
        table.add_column("region", no_wrap=True)
    table.add_column("why", overflow="fold")
    for skip in sorted(result.get("skipped_groups", []), key=lambda s: (s["asg_name"], s.get("region", ""))):
        table.add_row(escape(skip["asg_name"]), *((skip["region"],) if regional else ()), escape(skip["why"]))
    return table


def expand_in(target: Target, names: list[str]) -> list[str]:
    """The groups of the target's region that these names or patterns find (none is no error: another region
    may hold them)."""
    with clients_from(target.client):
        every = sorted(g["AutoScalingGroupName"] for g in every_group())
    return [n for n in every if any(fnmatch.fnmatchcase(n, p) for p in names)]


def merge(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Several regions' dry runs as one: each verdict and skipped group with its region, counts summed, and
    every region's own result under `by_region`."""
    return {
        "regions": list(results),
        "plan": [{"region": r, **v} for r, result in results.items() for v in result.get("plan", [])],
        "skipped_groups": [{"region": r, **g} for r, result in results.items()
                           for g in result.get("skipped_groups", [])],
        "groups_scanned": sum(int(result.get("groups_scanned", 0)) for result in results.values()),
        "by_region": results,
    }


CSV_FIELDS = ("region", "asg_name", "instance_id", "action", "why")


def csv_rows(result: dict[str, Any], region: str) -> list[dict[str, Any]]:
    """One row per instance, then one per group left alone (no instance, action `skip group`)."""
    rows = [{"region": v.get("region", region), "asg_name": v["asg_name"], "instance_id": v["instance_id"],
             "action": v["action"], "why": v["why"]} for v in result.get("plan", [])]
    rows += [{"region": g.get("region", region), "asg_name": g["asg_name"], "instance_id": "",
              "action": "skip group", "why": g["why"]} for g in result.get("skipped_groups", [])]
    return rows


@operator_command
def plan(
    ctx: typer.Context,
    asg: Annotated[list[str] | None, typer.Option(
        "--asg", metavar="NAME|GLOB", help="Only these ASGs, by name or shell pattern (repeatable), one line per "
                                           "instance; default: every opted-in one, one line per group.")] = None,
    all_regions: bool = typer.Option(False, "--all-regions", help="Every enabled region where the stack is deployed, "
                                                                  "merged (or give --region several times)."),
) -> None:
    """What the scanner would replace now, and why the others are left alone (a dry run: nothing changes)."""
    options = settings(ctx)
    targets = regions.targets(options, all_regions)
    if len(targets) == 1:
        target = targets[0]
        asg = expand(target, asg or [])
        payload: dict[str, Any] = {"dry_run": True}
        if asg:
            payload["asg_names"] = asg
        result = with_launch_hooks(target, target.invoke(SCANNER, payload))
    else:
        found = {t.region_name: expand_in(t, asg) if asg else [] for t in targets}
        if asg:  # a name or pattern no region holds is the operator's mistake
            matching([n for names in found.values() for n in names], asg,
                     f"ASG in {', '.join(t.region_name for t in targets)}")
        results = {t.region_name: t.invoke(SCANNER, {"dry_run": True, **(
            {"asg_names": found[t.region_name]} if asg else {})})
            for t in targets if found[t.region_name] or not asg}  # an empty asg_names would plan every group
        result = merge(results)
    if options.csv:
        print_csv(CSV_FIELDS, csv_rows(result, targets[0].region_name))
        return
    if options.json:
        print_json(result)
        return
    out = console()
    verdicts = result.get("plan", [])
    picks = [v for v in verdicts if v["action"] == "replace"]
    skipped = result.get("skipped_groups", [])
    if verdicts:
        out.print(plan_table(result) if asg else grouped_table(result))
    if skipped:
        out.print(skipped_table(result))
    out.print(f"{counted(result.get('groups_scanned', 0), 'group')} scanned: {counted(len(picks), 'instance')} would "
              f"be replaced, {len(verdicts) - len(picks)} left alone, {counted(len(skipped), 'group')} left alone. "
              "Nothing was changed.")
