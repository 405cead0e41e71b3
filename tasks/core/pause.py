"""The fleet-wide pause (circuit breaker): when the optimizer must start nothing new.

Paused while a person said so (`asg-optimizer pause --why ...`), while a named CloudWatch alarm is in ALARM, or
while more swaps failed in the last hour than the budget allows. The stack's alarms and the budget pause every
group; a group's `AsgOptimiser:PauseOnAlarms` tag pauses that group only. The scanner, the launch-event and
rebalance handlers and rollouts consult it before starting anything; executions already running finish, and the
interruption fallback is never paused (a spot with two minutes left needs its capacity whatever else is wrong).

A named alarm that does not exist pauses too: the guard someone asked for cannot be read, so "healthy" would be
a guess (a typo in a name must not silently turn the breaker off).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasks.core.errors import InvalidInput
from tasks.core.plural import counted
from tasks.core.tags import PAUSE_ON_ALARMS

ALARM = "ALARM"
FAILURE_WINDOW = timedelta(hours=1)
# Step Functions' own per-execution metrics (namespace AWS/States, dimension StateMachineArn) that count against
# the budget: refusals and no-capacity end SUCCEEDED; ABORTED is a person's stop.
FAILED_SWAP_METRICS = ("ExecutionsFailed", "ExecutionsTimedOut")
DEFAULT_FAILURE_BUDGET = 3
MAX_ALARM_NAME = 255  # CloudWatch's AlarmName limit
# Environment variables the deployed functions read (set from the stack settings pauseAlarms, pauseFailureBudget).
ALARMS_ENV = "PAUSE_ALARMS"
FAILURE_BUDGET_ENV = "PAUSE_FAILURE_BUDGET"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class AlarmState:
    """One named alarm as DescribeAlarms reported it; `state` None when no metric alarm of that name exists."""

    name: str
    state: str | None
    since: datetime | None = None


@dataclass(frozen=True)
class ManualPause:
    """A pause set by hand: why, by whom (the caller's ARN) and since when."""

    why: str
    by: str
    since: datetime


@dataclass(frozen=True)
class PauseSettings:
    alarms: tuple[str, ...] = ()
    failure_budget: int = DEFAULT_FAILURE_BUDGET


@dataclass(frozen=True)
class Pause:
    """Why nothing new may start; `reasons` in a fixed order: by hand, alarms, failures."""

    reasons: tuple[str, ...]

    @property
    def why(self) -> str:
        return "paused: " + "; ".join(self.reasons)


def alarm_names(raw: str, where: str) -> tuple[str, ...]:
    """Comma-separated alarm names (a stack setting or a tag value); InvalidInput names the bad one."""
    names = tuple(n.strip() for n in raw.split(","))
    if not raw.strip() or any(not n for n in names):
        raise InvalidInput(f"{where}: expected comma-separated CloudWatch alarm names, got {raw!r}")
    for name in names:
        if len(name) > MAX_ALARM_NAME or _CONTROL.search(name):
            raise InvalidInput(f"{where}: {name[:40]!r} is not a CloudWatch alarm name (1-{MAX_ALARM_NAME} "
                               "characters, no control characters)")
    return tuple(dict.fromkeys(names))


def failure_budget(raw: str, where: str) -> int:
    text = raw.strip()
    if not text.isdigit():
        raise InvalidInput(f"{where}: expected a whole number of failed swaps per hour (0 or more), got {raw!r}")
    return int(text)


def pause_settings(environment: Mapping[str, str]) -> PauseSettings:
    """The stack's settings as deployed into a function's environment (unset: no alarms, the default budget)."""
    alarms_raw = environment.get(ALARMS_ENV, "")
    budget_raw = environment.get(FAILURE_BUDGET_ENV, "")
    return PauseSettings(
        alarms=alarm_names(alarms_raw, ALARMS_ENV) if alarms_raw.strip() else (),
        failure_budget=failure_budget(budget_raw, FAILURE_BUDGET_ENV) if budget_raw.strip()
        else DEFAULT_FAILURE_BUDGET,
    )


def tagged_alarms(tags: Mapping[str, str]) -> tuple[str, ...]:
    """The alarms a group's `AsgOptimiser:PauseOnAlarms` tag names; () when absent or malformed (the policy
    check skips a malformed group on its own, naming the tag)."""
    raw = tags.get(PAUSE_ON_ALARMS)
    if raw is None:
        return ()
    try:
        return alarm_names(raw, PAUSE_ON_ALARMS)
    except InvalidInput:
        return ()


def failure_window(now: datetime, window: timedelta = FAILURE_WINDOW) -> tuple[datetime, datetime]:
    """The metric window the failed swaps are counted in, [start, end): CloudWatch rounds a start less than 15
    days ago down to the minute and takes the end as exclusive, so both are whole minutes, the start at or before
    `now - window` and the end after `now` (a failure at either edge counts rather than not: the breaker errs on
    the side of pausing)."""
    start = (now - window).replace(second=0, microsecond=0)
    return start, now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _alarm_reasons(names: Iterable[str], alarms: Mapping[str, AlarmState]) -> list[str]:
    reasons = []
    for name in names:
        found = alarms.get(name)
        if found is None or found.state is None:
            reasons.append(f"alarm {name} not found (a metric alarm of that name in this region)")
        elif found.state == ALARM:
            since = f" since {found.since.isoformat(timespec='seconds')}" if found.since else ""
            reasons.append(f"alarm {name} in ALARM{since}")
    return reasons


def fleet_pause(settings: PauseSettings, alarms: Mapping[str, AlarmState], manual: ManualPause | None,
                failures: int) -> Pause | None:
    """The pause over every group, or None. `alarms`: the states of (at least) the stack's alarms."""
    reasons = []
    if manual is not None:
        reasons.append(f"by hand since {manual.since.isoformat(timespec='seconds')} by {manual.by}: {manual.why}")
    reasons += _alarm_reasons(settings.alarms, alarms)
    if failures > settings.failure_budget:
        reasons.append(f"{counted(failures, 'swap')} failed in the last hour, more than the budget of "
                       f"{settings.failure_budget}")
    return Pause(tuple(reasons)) if reasons else None


def group_pause(fleet: Pause | None, group_alarms: Iterable[str], alarms: Mapping[str, AlarmState]) -> Pause | None:
    """The pause over one group: the fleet's, plus its own `AsgOptimiser:PauseOnAlarms` alarms."""
    reasons = (fleet.reasons if fleet else ()) + tuple(_alarm_reasons(group_alarms, alarms))
    return Pause(reasons) if reasons else None
