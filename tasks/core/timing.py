"""Timing of one swap (poll intervals and bounds), taken from execution input with defaults and limits.

Every path must fit inside the state machine's TimeoutSeconds with room to spare: an execution-level timeout
runs no Catch, so Cleanup and RestoreAfterFailure would never run and a spot or a held group would be left to
the sweep. The bound counts the waits, the polls and an allowance per task invocation (its run plus its
retries' backoff), and keeps a margin for the failure path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from tasks.core.errors import InvalidInput
from tasks.core.steps import SwapTiming


@dataclass(frozen=True)
class Timing:
    """Defaults fit real EC2: a spot passes status checks in 2-5 minutes; the cap keeps orphans bounded."""

    start_delay_seconds: int = 0
    boot_poll_seconds: int = 15
    boot_max_polls: int = 40
    group_poll_seconds: int = 10
    group_max_polls: int = 30
    # Behind load balancers the spot must pass their health checks (interval x healthy threshold: 5-3000 s;
    # the default 30 s x 5 = 150 s) before the on-demand leaves.
    lb_poll_seconds: int = 15
    lb_max_polls: int = 40

    def flat(self) -> dict[str, int]:
        return asdict(self)

    def fields(self) -> SwapTiming:
        """The same keys, typed: how the swap's state carries them (tasks.core.steps)."""
        return SwapTiming(start_delay_seconds=self.start_delay_seconds, boot_poll_seconds=self.boot_poll_seconds,
                          boot_max_polls=self.boot_max_polls, group_poll_seconds=self.group_poll_seconds,
                          group_max_polls=self.group_max_polls, lb_poll_seconds=self.lb_poll_seconds,
                          lb_max_polls=self.lb_max_polls)


MAX_START_DELAY = 3600  # an execution waits out at most an hour of grace period; the scanner takes longer ones
# The shortest poll interval (issue 13): EC2's Describe* calls are eventually consistent and rate-limited (token
# bucket, ~20 a second per account): polling faster sees nothing newer and spends the account's budget.
MIN_POLL_SECONDS = 2
_LIMITS = {
    "start_delay_seconds": (0, MAX_START_DELAY),
    "boot_poll_seconds": (MIN_POLL_SECONDS, 600),
    "boot_max_polls": (1, 200),
    "group_poll_seconds": (MIN_POLL_SECONDS, 600),
    "group_max_polls": (1, 200),
    "lb_poll_seconds": (MIN_POLL_SECONDS, 600),
    "lb_max_polls": (1, 400),
}


# statemachines/replace_instance.asl.json TimeoutSeconds (a test holds them equal).
EXECUTION_TIMEOUT_SECONDS = 7200
# Reserved for what follows the longest poll loop: AttachSpot, Cleanup and RestoreAfterFailure with retries.
MARGIN_SECONDS = 600
# Per task invocation: a poll (CheckSpot, RetireOnDemand: one or two reads) and a step (Validate, LaunchSpot,
# AttachSpot: several calls), each with the backoff of its retries (MaxDelaySeconds 20 per retry).
POLL_TASK_SECONDS, STEP_TASK_SECONDS, STEP_TASKS = 10, 120, 3


def worst_case_seconds(timing: Timing) -> int:
    """The longest a swap can run before its failure path starts, by the numbers above."""
    return (timing.start_delay_seconds + STEP_TASKS * STEP_TASK_SECONDS
            + timing.boot_max_polls * (timing.boot_poll_seconds + POLL_TASK_SECONDS)
            + timing.group_max_polls * (timing.group_poll_seconds + POLL_TASK_SECONDS))


def parse_timing(raw: Mapping[str, Any] | None) -> Timing:
    """Unknown keys and out-of-range values are refused with the key named: a typo must not mean 'default'.
    So is a timing whose worst case does not fit the execution timeout with the margin."""
    raw = dict(raw or {})
    known = {f.name for f in fields(Timing)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidInput(f"unknown timing key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    values: dict[str, int] = {}
    for key, value in raw.items():
        low, high = _LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(f"timing.{key} must be an integer from {low} to {high}, got {value!r}")
        values[key] = value
    timing = Timing(**values)
    worst, fits = worst_case_seconds(timing), EXECUTION_TIMEOUT_SECONDS - MARGIN_SECONDS
    if worst > fits:
        raise InvalidInput(
            f"timing takes up to {worst:,} s (start delay {timing.start_delay_seconds} s, "
            f"{timing.boot_max_polls} boot polls every {timing.boot_poll_seconds} s, {timing.group_max_polls} group "
            f"polls every {timing.group_poll_seconds} s, {POLL_TASK_SECONDS} s per poll and {STEP_TASK_SECONDS} s per "
            f"step): more than the {fits:,} s that leave Cleanup and Restore {MARGIN_SECONDS} s inside the "
            f"execution timeout of {EXECUTION_TIMEOUT_SECONDS:,} s")
    return timing


def cleanup_bound_seconds(timing: Timing) -> int:
    """Longest a launched spot can stay outside the group before the workflow itself terminates it."""
    return (
        timing.start_delay_seconds
        + timing.boot_poll_seconds * timing.boot_max_polls
        + timing.group_poll_seconds * timing.group_max_polls
        + timing.lb_poll_seconds * timing.lb_max_polls
    )
