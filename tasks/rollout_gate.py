"""Rollout Gate (after each batch has baked): settle the batch's children (moved, kept, failed), read the named
alarms, a cancel request and the pause, and decide: the next batch, a checkpoint, rollback, stop, or done.

The same function runs as the rollout's `Resumed` state (its input `{held: <state>}`) after a checkpoint or a
pause was resumed: the next batch starts only if nothing stops it now and no pause is still on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tasks.aws.groups import describe_group
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.aws.pause_state import alarm_states, paused_group
from tasks.aws.rollout_records import cancel_requested
from tasks.core.rollout import after_batch, after_hold
from tasks.core.steps import HeldRollout, RolloutState


@logged_metered_retryable
def handler(event: RolloutState | HeldRollout, context: Any) -> RolloutState:
    held, state = (event["held"], event["held"]) if "held" in event else (None, event)
    logger.append_keys(execution=state["execution_name"], asg=state["asg_name"])
    paused = paused_group(describe_group(state["asg_name"]).tags, datetime.now(UTC))
    alarms = alarm_states(state["alarms"]) if state["alarms"] else {}
    cancelled, why = cancel_requested(state["execution_name"]), paused.why if paused else None
    if held is not None:
        out = after_hold(state, alarms=alarms, cancelled=cancelled, paused=why)
    else:
        out = after_batch(state, state.get("results") or [], alarms=alarms, cancelled=cancelled, paused=why)
    logger.info("rollout gate", extra={"action": out["action"], "why": out["why"], "resumed": held is not None,
                                       "moved": len(out["moved"]), "failed": len(out["failed"])})
    return out
