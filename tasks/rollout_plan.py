"""Rollout Plan: refuse a rollout that must not start (another rollout of the group, an instance refresh, the
fleet-wide pause, an alarm that does not exist, bad input), or pick the instances not yet on the target (skip
matching) and cut them into batches; the first batch's child executions come back in `current`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws.clients import aws_handler
from tasks.aws.groups import active_refreshes, describe_group
from tasks.aws.instances import instances_by_id
from tasks.aws.pause_state import alarm_states, paused_group
from tasks.aws.rollout_records import running_rollouts
from tasks.core.eligibility import policy_of
from tasks.core.errors import NotOptedIn
from tasks.core.requests import parse_now
from tasks.core.rollout import parse_rollout_request, plan, refusal
from tasks.core.tags import is_opted_in
from tasks.core.timing import parse_timing

logger = Logger()


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    data = event.get("input") or {}
    request, timing = parse_rollout_request(data), parse_timing(data.get("timing"))
    name, started = event["execution_name"], parse_now(event.get("started")) or datetime.now(UTC)
    group = describe_group(request.asg_name)
    if not is_opted_in(group.tags):
        raise NotOptedIn(f"ASG {group.name} is not opted in (tag AsgOptimiser=true)")
    own_machine = event["execution_arn"].replace(":execution:", ":stateMachine:").rsplit(":", 1)[0]
    why = refusal(request, name, running_rollouts(own_machine), active_refreshes([group.name]).get(group.name),
                  (p.why if (p := paused_group(group.tags, datetime.now(UTC))) else None),
                  alarm_states(request.alarms) if request.alarms else {})
    if why:
        logger.info("rollout refused", extra={"why": why})
        return {"outcome": "refused", "asg_name": group.name, "why": why}
    members = [m.instance_id for m in group.members if m.lifecycle_state == "InService"]
    floor = policy_of(group).on_demand_floor(group.desired)  # on-demand the rollout keeps on-demand
    state = plan(request, name=name, stamp=started, group_version=group.launch_template_version, members=members,
                 instances=instances_by_id(members), timing=timing.flat(), floor=floor)
    logger.info("rollout planned", extra={"batches": len(state["batches"]), "skipped": state["skipped"]})
    return state
