"""Scanner (scheduled): find opted-in groups, decide which on-demand instances to replace, start one execution
per pick. A dry run returns the same plan and starts nothing.

Reads in a fixed order and a fixed number of calls whatever the number of groups: the groups (100 a page),
their instances (1,000 a call), the RUNNING executions (one listing). For each group it picks instances in, it
asks for the group's lifecycle hooks (a launch hook, which attached spots skip, skips the group unless bypassed);
only a real run asks whether an instance refresh is under way (AWS has no fleet-wide listing of either).
While the fleet (or a group) is paused (tasks/core/pause.py) it plans as usual and starts nothing there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from tasks.aws.clients import aws_handler, error_code
from tasks.aws.coordination import active_pools
from tasks.aws.executions import replace_state_machine_arn, running_swaps, start_swap
from tasks.aws.groups import active_refreshes, group_from_response, launch_hook_blocks, named_groups, opted_in_groups
from tasks.aws.instances import instances_by_id
from tasks.aws.pause_state import current_pause
from tasks.core.pause import group_pause, tagged_alarms
from tasks.core.requests import parse_scan_request
from tasks.core.selection import GroupSkip, Plan, select

logger = Logger()


@aws_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_scan_request(event or {})
    now = request.now or datetime.now(UTC)
    arn = replace_state_machine_arn()
    raw = named_groups(request.asg_names) if request.asg_names is not None else opted_in_groups()
    groups = [group_from_response(g) for g in raw]
    instances = instances_by_id(m.instance_id for g in groups for m in g.members)
    running = {name for swaps in running_swaps(arn).values() for name, _ in swaps}
    cooling = active_pools(now.timestamp())
    fleet, alarms = current_pause(now, (a for g in groups for a in tagged_alarms(g.tags)))
    paused = {g.name: p.why for g in groups if (p := group_pause(fleet, tagged_alarms(g.tags), alarms))}
    plan = select(groups, instances, running, now, busy=paused, cooling_pools=cooling)
    if plan.picks:  # launch hooks block a group in a dry run too; refreshes are asked about only for real
        picked = {v.asg_name for v in plan.picks}
        busy = launch_hook_blocks(g for g in groups if g.name in picked)
        if not request.dry_run:
            busy |= active_refreshes(picked - set(busy))
        if busy:
            plan = select(groups, instances, running, now, busy=paused | busy, cooling_pools=cooling)
    found = {g.name for g in groups}
    missing = tuple(GroupSkip(n, "ASG not found") for n in request.asg_names or () if n not in found)
    plan = Plan(plan.verdicts, plan.skipped_groups + missing)
    for skip in plan.skipped_groups:
        if skip.malformed:
            logger.warning(skip.why, extra={"asg": skip.asg_name})
        else:
            logger.info("group skipped", extra={"asg": skip.asg_name, "why": skip.why})
    started, not_started = [], []
    if not request.dry_run:
        for pick in plan.picks:
            try:
                name, new = start_swap(arn, pick.asg_name, pick.instance_id, reason="scheduled",
                                       timing=request.timing, at=request.scheduled_at or now)
            except ClientError as error:  # one refused start (throttled after boto's retries) must not end the scan
                logger.warning("swap not started", extra={"asg": pick.asg_name, "instance_id": pick.instance_id,
                                                          "error": error_code(error)})
                not_started.append({"asg_name": pick.asg_name, "instance_id": pick.instance_id,
                                    "why": f"StartExecution failed: {error_code(error)}"})
                continue
            logger.info("swap started" if new else "swap already started",
                        extra={"asg": pick.asg_name, "instance_id": pick.instance_id, "execution": name})
            if new:
                started.append(name)
    return {
        "dry_run": request.dry_run,
        "paused": fleet.why if fleet else None,
        "groups_scanned": len(groups),
        "started": started,
        "not_started": not_started,
        "plan": [{"asg_name": v.asg_name, "instance_id": v.instance_id, "action": v.action, "why": v.why}
                 for v in plan.verdicts],
        "skipped_groups": [{"asg_name": s.asg_name, "why": s.why} for s in plan.skipped_groups],
    }
