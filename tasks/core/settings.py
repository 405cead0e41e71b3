"""What a function's configuration is made of, and how each value is parsed (pure: tasks/aws/settings.py reads
the environment). A value that cannot be used fails the invocation with one line naming the variable and the
value: a deployment mistake is never a refusal (SwapRefused) nor a silent default.

Every variable has a source. STACK ones are declared per function in stack/description.py (`environment`) and
set at deploy; RUNTIME ones the Lambda runtime sets itself (reserved names the stack may not set); OVERRIDE ones
are unset in a plain deployment, where their default is AWS's own behaviour, and set through the stack's
`environment` setting or the embedded AWS's (a shorter spot notice, faster swap polls).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tasks.core.errors import InvalidInput
from tasks.core.pause import ALARMS_ENV, FAILURE_BUDGET_ENV, PauseSettings, pause_settings
from tasks.core.timing import Timing, parse_timing


class Source(Enum):
    STACK = "stack"
    RUNTIME = "runtime"
    OVERRIDE = "override"


@dataclass(frozen=True)
class Variable:
    name: str
    source: Source
    missing: str = ""  # why a required one is unset (said in the error); "" for an OVERRIDE (it has a default)


class SettingError(Exception):
    """A function's environment holds a value it cannot use (or lacks a required one)."""


# A parser gets only the variables its field declares (tasks/aws/settings.py restricts the mapping).
Parser = Callable[[Mapping[str, str]], Any]

AWS_REGION = Variable("AWS_REGION", Source.RUNTIME, "the Lambda runtime sets it in every function")
REPLACE_STATE_MACHINE_ARN = Variable("REPLACE_STATE_MACHINE_ARN", Source.STACK,
                                     "the function was deployed without the state machine ARN")
INTERRUPTION_STATE_MACHINE_ARN = Variable("INTERRUPTION_STATE_MACHINE_ARN", Source.STACK,
                                          "the function was deployed without the state machine ARN")
ROLLOUT_STATE_MACHINE_ARN = Variable("ROLLOUT_STATE_MACHINE_ARN", Source.STACK,
                                     "the function was deployed without the state machine ARN")
COOLDOWN_TABLE = Variable("COOLDOWN_TABLE", Source.STACK, "the function was deployed without the cooldown table")
PAUSE_ALARMS = Variable(ALARMS_ENV, Source.STACK)  # empty: no alarm pauses the fleet
PAUSE_FAILURE_BUDGET = Variable(FAILURE_BUDGET_ENV, Source.STACK)  # empty: the default budget
COMMITMENTS = Variable("COMMITMENTS", Source.STACK)  # use (default) | ignore
SAVINGS_PLAN_RESERVE_PER_HOUR = Variable("SAVINGS_PLAN_RESERVE_PER_HOUR", Source.STACK)  # $/h, default 0
SPOT_NOTICE_SECONDS = Variable("SPOT_NOTICE_SECONDS", Source.OVERRIDE)  # EC2 gives 120 s
SWAP_TIMING = Variable("SWAP_TIMING", Source.OVERRIDE)  # JSON of tasks.core.timing keys for event-started swaps


def required(variable: Variable) -> Parser:
    """The variable's value as set; unset or blank fails, saying why it should have been set."""

    def parse(values: Mapping[str, str]) -> str:
        value = values.get(variable.name, "").strip()
        if not value:
            raise SettingError(f"{variable.name} is not set: {variable.missing}")
        return value

    return parse


@dataclass(frozen=True)
class CommitmentSettings:
    """The stack settings: awareness on/off account-wide, and $/hour of Savings Plans left for other usage."""

    enabled: bool = True
    savings_plan_reserve: float = 0.0


def commitment_settings(values: Mapping[str, str]) -> CommitmentSettings:
    raw = values.get(COMMITMENTS.name, "use").strip()
    reserve = values.get(SAVINGS_PLAN_RESERVE_PER_HOUR.name, "0").strip() or "0"
    if raw not in ("use", "ignore"):
        raise SettingError(f"{COMMITMENTS.name}={raw!r}: expected 'use' or 'ignore'")
    try:
        amount = float(reserve)
    except ValueError:
        amount = -1.0
    if not amount >= 0:  # also refuses nan
        raise SettingError(f"{SAVINGS_PLAN_RESERVE_PER_HOUR.name}={reserve!r}: expected dollars per hour, 0 or more")
    return CommitmentSettings(raw == "use", amount)


def notice_seconds(default: int) -> Parser:
    """Seconds from a spot's interruption warning to its reclaim: `default` (EC2's) unless overridden."""

    def parse(values: Mapping[str, str]) -> int:
        raw = values.get(SPOT_NOTICE_SECONDS.name, "")
        if not raw.strip():
            return default
        if not raw.strip().isdigit() or int(raw) == 0:
            raise SettingError(f"{SPOT_NOTICE_SECONDS.name}={raw!r}: expected a whole number of seconds, 1 or more")
        return int(raw)

    return parse


def swap_timing(values: Mapping[str, str]) -> Timing:
    """The timing of the swaps an event starts: the defaults unless overridden (tasks/core/timing.py refuses a
    bad key or figure; that refusal is named with the variable)."""
    raw = values.get(SWAP_TIMING.name, "")
    if not raw.strip():
        return parse_timing({})
    try:
        decoded = json.loads(raw)
        if not isinstance(decoded, dict):
            raise InvalidInput("expected a JSON object")
        return parse_timing(decoded)
    except (ValueError, InvalidInput) as error:
        raise SettingError(f"{SWAP_TIMING.name}={raw!r}: {error}") from None


def fleet_pause_settings(values: Mapping[str, str]) -> PauseSettings:
    """The fleet-wide pause's stack settings (tasks/core/pause.py parses them, naming variable and value)."""
    try:
        return pause_settings(values)
    except InvalidInput as error:  # a misconfigured stack, not a refused swap
        raise SettingError(str(error)) from None
