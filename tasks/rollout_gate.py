"""Rollout Gate (after each batch has baked): settle the batch's children (moved, kept, failed), read the named
alarms, a cancel request and the pause, and decide: the next batch, a checkpoint, rollback, stop, or done."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws.clients import aws_handler
from tasks.aws.groups import describe_group
from tasks.aws.pause_state import alarm_states, paused_group
from tasks.aws.rollout_records import cancel_requested
from tasks.core.rollout import after_batch

logger = Logger()


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(execution=event["execution_name"], asg=event["asg_name"])
    paused = paused_group(describe_group(event["asg_name"]).tags, datetime.now(UTC))
    state = after_batch(event, event.get("results") or [],
                        alarms=alarm_states(event["alarms"]) if event["alarms"] else {},
                        cancelled=cancel_requested(event["execution_name"]), paused=paused.why if paused else None)
    logger.info("rollout gate", extra={"action": state["action"], "why": state["why"],
                                       "moved": len(state["moved"]), "failed": len(state["failed"])})
    return state
