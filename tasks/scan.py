"""Scanner (scheduled): find opted-in groups, decide which on-demand instances to replace, start one execution
per pick. A dry run returns the same plan and starts nothing.

Reads in a fixed order and a fixed number of calls whatever the number of groups: the groups (100 a page),
their instances (1,000 a call), the RUNNING executions (one listing), the cooldown store and the pause set by
hand (one consistent Scan), the pause's failure budget and alarms (tasks/aws/pause_state.py), and the
account's commitments (tasks/aws/commitments.py: one DescribeReservedInstances, one DescribeSavingsPlans page,
kept for 5 minutes by a warm container; the region's running instances and the plans' rates only when a
commitment is active). Lifecycle hooks are not read: a group whose launch hook (which attached instances skip)
made Validate refuse a swap is in the cooldown store and skipped, naming the hook, until that cools; then one swap
asks again. Only a real run asks whether an instance refresh is under way in the groups it picks (AWS has no
fleet-wide listing). Covered on-demand instances are kept; idle
commitments swap spots back to on-demand (reason `commitment`, market `on-demand`).
While the fleet (or a group) is paused (tasks/core/pause.py) it plans as usual and starts nothing there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from tasks.aws.clients import error_code
from tasks.aws.commitments import fleet_coverage, reverse_swaps
from tasks.aws.coordination import active_cooldowns
from tasks.aws.executions import replace_state_machine_arn, running_swaps, start_swap
from tasks.aws.groups import active_refreshes, group_from_response, named_groups, opted_in_groups
from tasks.aws.instances import instances_by_id
from tasks.aws.invocation import logged_metered_retryable, logger, metrics
from tasks.aws.pause_state import manual_pause_from_item, pause_with
from tasks.aws.settings import Region
from tasks.core.cooldowns import ON_DEMAND, SPOT, hook_skip, quota_skip
from tasks.core.pause import group_pause, tagged_alarms
from tasks.core.requests import ScanRequest, parse_scan_request
from tasks.core.selection import SKIP, GroupSkip, Plan, select
from tasks.core.spot_share import spot_share_percent


def start_all(arn: str, starts: Iterable[tuple[str, str, str, str | None]], request: ScanRequest,
              at: datetime) -> tuple[list[str], list[dict[str, str]]]:
    """Start one execution per (group, instance, reason, on-demand type or None for spot); one refused start
    (throttled after boto's retries) must not end the scan."""
    started, not_started = [], []
    for asg_name, instance_id, reason, on_demand_type in starts:
        try:
            name, new = start_swap(arn, asg_name, instance_id, reason=reason, timing=request.timing, at=at,
                                   market=ON_DEMAND if on_demand_type else SPOT, instance_type=on_demand_type)
        except ClientError as error:
            logger.warning("swap not started", extra={"asg": asg_name, "instance_id": instance_id,
                                                      "error": error_code(error)})
            not_started.append({"asg_name": asg_name, "instance_id": instance_id,
                                "why": f"StartExecution failed: {error_code(error)}"})
            continue
        logger.info("swap started" if new else "swap already started",
                    extra={"asg": asg_name, "instance_id": instance_id, "execution": name, "reason": reason})
        if new:
            started.append(name)
    return started, not_started


def _emit_spot_share(request: ScanRequest, groups: list[Any], instances: dict[str, Any]) -> None:
    """The scheduled scan of every opted-in group reports the fleet's spot share (a dry run or a scan of named
    groups is not the fleet)."""
    share = spot_share_percent(groups, instances)
    if request.dry_run or request.asg_names is not None or share is None:
        return
    metrics.add_metric(name="SpotShare", unit=MetricUnit.Percent, value=share)  # flushed as the invocation ends


@logged_metered_retryable
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_scan_request(event or {})
    now = request.now or datetime.now(UTC)
    arn = replace_state_machine_arn()
    raw = named_groups(request.asg_names) if request.asg_names is not None else opted_in_groups()
    groups = [group_from_response(g) for g in raw]
    instances = instances_by_id(m.instance_id for g in groups for m in g.members)
    _emit_spot_share(request, groups, instances)
    running = {name for swaps in running_swaps(arn).values() for name, _ in swaps}
    cooldowns = active_cooldowns(now.timestamp())
    cooling, region = cooldowns.pools, Region.from_env().name
    fleet, alarms = pause_with(now, manual_pause_from_item(cooldowns.pause_item),
                               (a for g in groups for a in tagged_alarms(g.tags)))
    paused = {g.name: p.why for g in groups if (p := group_pause(fleet, tagged_alarms(g.tags), alarms))}
    if region in cooldowns.quotas:  # the region's spot quota refused a launch lately: every group waits it out
        paused |= {g.name: quota_skip(region, cooldowns.quotas[region]) for g in groups if g.name not in paused}
    paused |= {g.name: hook_skip(*cooldowns.hooked[g.name]) for g in groups
               if g.name in cooldowns.hooked and g.name not in paused}
    spot_types = {i.instance_type for i in instances.values() if i.lifecycle == "spot"}
    covered = fleet_coverage(groups, extra_types=spot_types, now=now)  # None: no commitments, or awareness off
    kept = covered.kept() if covered else {}
    plan = select(groups, instances, running, now, busy=paused, cooling_pools=cooling, kept=kept)
    if plan.picks and not request.dry_run:  # refreshes are asked about only for real
        busy = active_refreshes({v.asg_name for v in plan.picks})
        if busy:
            plan = select(groups, instances, running, now, busy=paused | busy, cooling_pools=cooling, kept=kept)
    found = {g.name for g in groups}
    missing = tuple(GroupSkip(n, "ASG not found") for n in request.asg_names or () if n not in found)
    plan = Plan(plan.verdicts, plan.skipped_groups + missing)
    for skip in plan.skipped_groups:
        if skip.malformed:
            logger.warning(skip.why, extra={"asg": skip.asg_name})
        else:
            logger.info("group skipped", extra={"asg": skip.asg_name, "why": skip.why})
    back, waiting = reverse_swaps(covered, groups, instances, running, [s.asg_name for s in plan.skipped_groups],
                                  now, cooldowns.on_demand_pools) if covered and not request.dry_run else ([], [])
    starts = [(p.asg_name, p.instance_id, "scheduled", None) for p in plan.picks] + [
        (p.asg_name, p.instance_id, "commitment", p.instance_type) for p in back]
    # named from the scheduled event's time: a duplicate delivery of the same event starts nothing new
    at = request.scheduled_at or now
    started, not_started = start_all(arn, starts, request, at) if not request.dry_run else ([], [])
    return {
        "dry_run": request.dry_run,
        "paused": fleet.why if fleet else None,
        "groups_scanned": len(groups),
        "started": started,
        "not_started": not_started,
        "plan": [{"asg_name": v.asg_name, "instance_id": v.instance_id, "action": v.action, "why": v.why}
                 for v in plan.verdicts] + [
            {"asg_name": p.asg_name, "instance_id": p.instance_id, "action": "to-on-demand", "why": p.why} for p in back
        ] + [{"asg_name": w.asg_name, "instance_id": w.instance_id, "action": SKIP, "why": w.why} for w in waiting],
        "idle_commitment_per_hour": covered.coverage.idle_per_hour if covered else 0.0,
        "skipped_groups": [{"asg_name": s.asg_name, "why": s.why} for s in plan.skipped_groups],
    }
