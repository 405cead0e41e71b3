"""Rollout Release (every ending of a rollout: rolled out, stopped, rolled back, cancelled): drop the group's
rollout claim so the next rollout of the group can start. A rollout stopped from outside never gets here; the
sweep drops its claim (tasks/core/sweep.py stale_rollout_claim)."""

from __future__ import annotations

from typing import Any

from tasks.aws.coordination import release_rollout
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.core.requests import required_text
from tasks.core.steps import RolloutReleaseInput, RolloutReleaseResult


@logged_metered_retryable
def handler(event: RolloutReleaseInput, context: Any) -> RolloutReleaseResult:
    name, asg = required_text(event, "execution_name", "execution_name"), required_text(event, "asg_name", "asg_name")
    released = release_rollout(asg, name)
    logger.info("rollout claim released" if released else "rollout claim not ours (gone already)",
                extra={"execution": name, "asg": asg})
    return {"released": released}
