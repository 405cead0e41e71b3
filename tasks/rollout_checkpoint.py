"""Rollout checkpoint (a `.waitForTaskToken` task): keep the token so `asg-optimizer rollout resume` can send
success (and `rollout cancel` failure). The rollout waits until then; nothing else here decides anything."""

from __future__ import annotations

from typing import Any

from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.aws.rollout_records import keep_token
from tasks.core.requests import required_text
from tasks.core.steps import CheckpointInput, CheckpointResult


@logged_metered_retryable
def handler(event: CheckpointInput, context: Any) -> CheckpointResult:
    token, name, asg = (required_text(event, k, k) for k in ("token", "execution_name", "asg_name"))
    keep_token(name, asg, token, str(event.get("why", "")))
    logger.info("rollout at a checkpoint", extra={"execution": name, "asg": asg, "why": event.get("why")})
    return {"waiting": name}
