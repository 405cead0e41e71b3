"""Rollout Plan: refuse a rollout that must not start (an instance refresh, the fleet-wide pause, an alarm that
does not exist, bad input, another rollout of the group), or pick the instances not yet on the target (skip
matching) and cut them into batches; the first batch's child executions come back in `current`.

One rollout of a group at a time is the group's rollout claim (tasks/aws/coordination.py claim_rollout), taken
last, after every refusal that needs none: a conditional write, so of two rollouts started together exactly one
runs. The rollout's Release state drops it on every ending; the sweep drops the claim of a rollout stopped from
outside (StopExecution runs no Catch)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tasks.aws.commitments import fleet_coverage
from tasks.aws.coordination import claim_rollout, release_rollout
from tasks.aws.groups import active_refreshes, describe_group, group_from_response, opted_in_groups
from tasks.aws.instances import instances_by_id
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.aws.pause_state import alarm_states, paused_group
from tasks.core.coordination import rollout_claim
from tasks.core.eligibility import policy_of
from tasks.core.errors import NotOptedIn
from tasks.core.requests import parse_now
from tasks.core.rollout import TIMEOUT_SECONDS, claimed_by, parse_rollout_request, plan, refusal
from tasks.core.steps import RolloutPlanInput, RolloutPlanResult
from tasks.core.tags import is_opted_in
from tasks.core.timing import parse_timing


@logged_metered_retryable
def handler(event: RolloutPlanInput, context: Any) -> RolloutPlanResult:
    data = event.get("input") or {}
    request, timing = parse_rollout_request(data), parse_timing(data.get("timing"))
    name, started = event["execution_name"], parse_now(event.get("started")) or datetime.now(UTC)
    group = describe_group(request.asg_name)
    if not is_opted_in(group.tags):
        raise NotOptedIn(f"ASG {group.name} is not opted in (tag AsgOptimiser=true)")
    why = refusal(request, active_refreshes([group.name]).get(group.name),
                  (p.why if (p := paused_group(group.tags, datetime.now(UTC))) else None),
                  alarm_states(request.alarms) if request.alarms else {})
    if why:
        logger.info("rollout refused", extra={"why": why})
        return {"outcome": "refused", "asg_name": group.name, "why": why}
    holder = claim_rollout(group.name, rollout_claim(name, started.timestamp(), TIMEOUT_SECONDS))
    if holder:
        logger.info("rollout refused", extra={"why": claimed_by(group.name, holder)})
        return {"outcome": "refused", "asg_name": group.name, "why": claimed_by(group.name, holder)}
    members = [m.instance_id for m in group.members if m.lifecycle_state == "InService"]
    policy = policy_of(group)
    floor = policy.on_demand_floor(group.desired)  # on-demand the rollout keeps on-demand
    # On-demand a commitment covers stays on-demand, judged as the scanner judges (every opted-in group, the
    # region's usage); None: no commitment, or awareness off.
    fleet = fleet_coverage([group_from_response(g) for g in opted_in_groups()]) if policy.uses_commitments else None
    state = plan(request, name=name, stamp=started, group_version=group.launch_template_version, members=members,
                 instances=instances_by_id(members), timing=timing.flat(), floor=floor,
                 covered=fleet.kept() if fleet else {})
    if state["outcome"] == "nothing":  # nothing runs: the claim goes now
        release_rollout(group.name, name)
    logger.info("rollout planned", extra={"batches": len(state["batches"]), "skipped": state["skipped"],
                                          "covered": len(state["covered"])})
    return state
