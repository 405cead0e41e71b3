"""Launch event: an opted-in group launched an instance ("EC2 Instance Launch Successful"); swap it to spot once
its grace period has passed, under the same policy as the scanner.

The execution starts now and waits out the rest of the grace period itself (`timing.start_delay_seconds`), so
nothing has to remember the instance in between. It is named from the event's time: EventBridge may deliver an
event twice, and the second start is recognised by name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tasks.aws.commitments import fleet_coverage
from tasks.aws.executions import replace_state_machine_arn, running_swaps, start_swap
from tasks.aws.groups import describe_group, group_from_response, opted_in_groups
from tasks.aws.instances import instances_by_id
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.aws.pause_state import paused_group
from tasks.core.errors import GroupNotFound, InvalidInput
from tasks.core.requests import parse_now, required_text
from tasks.core.selection import REPLACE, SKIP, decide_launched
from tasks.core.timing import MAX_START_DELAY, parse_timing


@logged_metered_retryable
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event.get("detail") or {}
    asg_name, instance_id = (
        required_text(detail, k, f"event detail.{k}") for k in ("AutoScalingGroupName", "EC2InstanceId")
    )
    event_time, arn = parse_now(event.get("time")) or datetime.now(UTC), replace_state_machine_arn()
    result = {"asg_name": asg_name, "instance_id": instance_id, "action": SKIP, "why": "ASG not found",
              "execution": "", "start_delay_seconds": 0}
    try:
        group = describe_group(asg_name)
    except GroupNotFound:
        logger.info("launch event skipped", extra=result)
        return result
    paused = paused_group(group.tags, datetime.now(UTC))
    if paused:  # nothing new starts; the scanner takes the instance once resumed
        result["why"] = paused.why
        logger.info("launch event skipped", extra=result)
        return result
    instances = instances_by_id(m.instance_id for m in group.members)
    running = {name for swaps in running_swaps(arn).values() for name, _ in swaps}
    verdict, delay = decide_launched(group, instances, running, datetime.now(UTC), instance_id)
    if verdict.action == REPLACE and delay <= MAX_START_DELAY:
        # Only a swap about to start needs the commitments (they are read fleet-wide): a covered one stays.
        fleet = fleet_coverage([group_from_response(g) for g in opted_in_groups()])  # None: no commitments
        if fleet:
            verdict, delay = decide_launched(group, instances, running, datetime.now(UTC), instance_id,
                                             kept=fleet.kept())
    result["why"] = verdict.why
    if verdict.action == REPLACE:
        try:
            timing = parse_timing({"start_delay_seconds": delay})
        except InvalidInput as error:  # a grace period longer than the workflow may wait: the scanner takes it
            result["why"] = f"grace period too long to wait in the workflow ({error}); the scanner will pick it up"
        else:
            name, _ = start_swap(arn, asg_name, instance_id, reason="event", timing=timing, at=event_time)
            result.update(action=REPLACE, execution=name, start_delay_seconds=delay)
    logger.info("launch event", extra=result)
    return result
