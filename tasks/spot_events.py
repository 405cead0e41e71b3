"""EventBridge targets for spot warnings on instances of opted-in groups.

- Interruption warning: start the spot-interruption execution (on-demand capacity in before the spot goes).
- Rebalance recommendation: replace the spot proactively with a spot from another pool, through the ordinary
  replacement workflow (reason `rebalance`) — unless the group has Capacity Rebalancing on: then Auto Scaling
  itself launches a replacement and terminates the old spot, and we leave it to it (one recommendation, one
  replacement). Its pool cools down first, so the type choice avoids it; when every
  pool is cooling the swap ends `no-capacity` and the interruption fallback covers the instance. An instance is
  churned at most once per cooldown (an atomic claim in the cooldown table).

While the fleet or the group is paused (tasks/core/pause.py) a rebalance starts nothing; an interruption
warning always starts its fallback.

Both are named from the event, so a redelivered event finds its execution instead of starting a second one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tasks.aws.clients import client
from tasks.aws.coordination import claim_instance, cool_pools, release_instance
from tasks.aws.executions import interruption_state_machine_arn, replace_state_machine_arn, start_named, start_swap
from tasks.aws.groups import describe_group
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.aws.pause_state import paused_group
from tasks.aws.settings import EventSwapTiming, SpotNotice
from tasks.core.interruption import SpotEvent, parse_spot_event
from tasks.core.model import Group, Member
from tasks.core.naming import execution_name
from tasks.core.prices import Pool
from tasks.core.steps import InterruptionRequest
from tasks.core.tags import is_opted_in


def owner(instance_id: str) -> tuple[Group, Member] | str:
    """The opted-in group the instance serves in, or why we leave it alone."""
    found = client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    if not found:
        return f"instance {instance_id} is not in an Auto Scaling group"
    group = describe_group(found[0]["AutoScalingGroupName"])
    member = group.member(instance_id)
    if not is_opted_in(group.tags) or member is None:
        return f"ASG {group.name} is not opted in"
    return group, member


def start_interruption(warning: SpotEvent, group: Group) -> tuple[str, bool]:
    """(execution name, True if this call started it); a redelivered warning gets the existing execution."""
    arn = interruption_state_machine_arn()
    name = execution_name(group.name, warning.instance_id, warning.time)
    payload: InterruptionRequest = {
        "asg_name": group.name, "instance_id": warning.instance_id, "reason": "interruption",
        "warned_at": warning.time.isoformat(), "notice_seconds": SpotNotice.from_env().seconds}
    return name, start_named(arn, name, payload)


@logged_metered_retryable
def on_interruption(event: dict[str, Any], context: Any) -> dict[str, Any]:
    warning = parse_spot_event(event)
    found = owner(warning.instance_id)
    if isinstance(found, str):
        logger.info("interruption ignored", extra={"instance_id": warning.instance_id, "why": found})
        return {"ignored": found}
    name, started = start_interruption(warning, found[0])
    logger.info("interruption fallback", extra={"execution": name, "started": started})
    return {"execution_name": name, "started": started}


@logged_metered_retryable
def on_rebalance(event: dict[str, Any], context: Any) -> dict[str, Any]:
    warning = parse_spot_event(event)
    found = owner(warning.instance_id)
    if isinstance(found, str):
        return {"ignored": found}
    group, member = found
    paused = paused_group(group.tags, datetime.now(UTC))
    if paused:  # the interruption fallback still covers the spot if its warning comes
        logger.info("rebalance ignored", extra={"why": paused.why})
        return {"ignored": paused.why}
    if group.capacity_rebalance:  # Auto Scaling launches the replacement itself: a second one would be ours
        why = f"ASG {group.name} has Capacity Rebalancing on: Auto Scaling replaces {warning.instance_id} itself"
        logger.info("rebalance ignored", extra={"why": why})
        return {"ignored": why}
    if not claim_instance(warning.instance_id, reason="rebalance"):
        why = f"instance {warning.instance_id} was already churned within the cooldown"
        logger.info("rebalance ignored", extra={"why": why})
        return {"ignored": why}
    try:
        cool_pools([Pool(member.instance_type, member.availability_zone)], reason="rebalance",
                   source=warning.instance_id)
        name, started = start_swap(replace_state_machine_arn(), group.name, warning.instance_id, reason="rebalance",
                                   timing=EventSwapTiming.from_env().timing,
                                   at=warning.time)
    except Exception:
        # The invocation fails and EventBridge retries it with the same event: the retry must find the claim free.
        release_instance(warning.instance_id)
        raise
    logger.info("rebalance swap", extra={"execution": name, "started": started})
    return {"execution_name": name, "started": started}
