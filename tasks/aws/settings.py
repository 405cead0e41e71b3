"""Each function's configuration, read from its environment here and nowhere else in tasks/ (a test greps).

A settings class is a frozen dataclass whose fields each declare the variables they read (tasks/core/settings.py
parses them, and sees only those): small parts that adapters read (`CoordinationTable.from_env().name`), and one
class per function (or per group of functions reading the same set) composed of the parts its handler reaches.
HANDLER_SETTINGS names each handler's class; tests/test_settings.py checks every class against the stack
description both ways, and that no handler reaches a part its class lacks.

Read on every call, not cached per container: a read is a few dictionary look-ups and at most one small parse
(microseconds, beside any AWS call), while a cache would be wrong in the embedded AWS, where one process hosts
every function of every region and sets each invocation's variables as it starts (asg_optimizer/local/seam.py);
tests then change the environment without a reset to remember.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self

from tasks.core.interruption import NOTICE_SECONDS
from tasks.core.pause import PauseSettings
from tasks.core.settings import (
    AWS_REGION,
    COMMITMENTS,
    COOLDOWN_TABLE,
    INTERRUPTION_STATE_MACHINE_ARN,
    PAUSE_ALARMS,
    PAUSE_FAILURE_BUDGET,
    REPLACE_STATE_MACHINE_ARN,
    ROLLOUT_STATE_MACHINE_ARN,
    SAVINGS_PLAN_RESERVE_PER_HOUR,
    SPOT_NOTICE_SECONDS,
    SWAP_TIMING,
    CommitmentSettings,
    Parser,
    Variable,
    commitment_settings,
    fleet_pause_settings,
    notice_seconds,
    required,
    swap_timing,
)
from tasks.core.timing import Timing


def reads(parse: Parser, *variables: Variable) -> dict[str, Any]:
    """A field's metadata: parsed by `parse` from exactly `variables`."""
    return {"parse": parse, "variables": variables}


def part(cls: type[Settings]) -> dict[str, Any]:
    """A field's metadata: the field is another settings class, read from the same environment."""
    return {"part": cls}


@dataclass(frozen=True)
class Settings:
    @classmethod
    def variables(cls) -> tuple[Variable, ...]:
        """Every variable this class reads, parts included, each once."""
        found: dict[str, Variable] = {}
        for f in fields(cls):
            for variable in f.metadata["part"].variables() if "part" in f.metadata else f.metadata["variables"]:
                found.setdefault(variable.name, variable)
        return tuple(found.values())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        """Read and check every field; the first unusable value raises SettingError naming it."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if "part" in f.metadata:
                values[f.name] = f.metadata["part"].from_env(environ)
            else:
                names = [v.name for v in f.metadata["variables"]]
                values[f.name] = f.metadata["parse"]({n: environ[n] for n in names if n in environ})
        return cls(**values)


# The parts adapters and handlers read.

@dataclass(frozen=True)
class Region(Settings):
    """The function's own region: AWS_REGION, set by the Lambda runtime (a reserved name the stack cannot set)."""

    name: str = field(metadata=reads(required(AWS_REGION), AWS_REGION))


@dataclass(frozen=True)
class CoordinationTable(Settings):
    name: str = field(metadata=reads(required(COOLDOWN_TABLE), COOLDOWN_TABLE))


@dataclass(frozen=True)
class ReplaceMachine(Settings):
    arn: str = field(metadata=reads(required(REPLACE_STATE_MACHINE_ARN), REPLACE_STATE_MACHINE_ARN))


@dataclass(frozen=True)
class InterruptionMachine(Settings):
    arn: str = field(metadata=reads(required(INTERRUPTION_STATE_MACHINE_ARN), INTERRUPTION_STATE_MACHINE_ARN))


@dataclass(frozen=True)
class RolloutMachine(Settings):
    arn: str = field(metadata=reads(required(ROLLOUT_STATE_MACHINE_ARN), ROLLOUT_STATE_MACHINE_ARN))


@dataclass(frozen=True)
class FleetPause(Settings):
    settings: PauseSettings = field(metadata=reads(fleet_pause_settings, PAUSE_ALARMS, PAUSE_FAILURE_BUDGET))


@dataclass(frozen=True)
class Commitments(Settings):
    settings: CommitmentSettings = field(metadata=reads(commitment_settings, COMMITMENTS,
                                                        SAVINGS_PLAN_RESERVE_PER_HOUR))


@dataclass(frozen=True)
class SpotNotice(Settings):
    seconds: int = field(metadata=reads(notice_seconds(NOTICE_SECONDS), SPOT_NOTICE_SECONDS))


@dataclass(frozen=True)
class EventSwapTiming(Settings):
    timing: Timing = field(metadata=reads(swap_timing, SWAP_TIMING))


# One class per function, or per group of functions whose handlers reach the same parts.

@dataclass(frozen=True)
class NoSettings(Settings):
    """check-spot, cleanup: nothing beyond Powertools' own variables."""


@dataclass(frozen=True)
class SwapStepSettings(Settings):
    """The replacement and interruption steps that keep their state in the coordination table."""

    table: CoordinationTable = field(metadata=part(CoordinationTable))


@dataclass(frozen=True)
class LaunchSpotSettings(Settings):
    region: Region = field(metadata=part(Region))
    table: CoordinationTable = field(metadata=part(CoordinationTable))


@dataclass(frozen=True)
class ValidateSettings(Settings):
    """A manual swap reads the commitments in the function's region."""

    region: Region = field(metadata=part(Region))
    table: CoordinationTable = field(metadata=part(CoordinationTable))
    commitments: Commitments = field(metadata=part(Commitments))


@dataclass(frozen=True)
class SwapStarterSettings(Settings):
    """scanner, launch-event, rollout-plan: start replacements, honour the pause, keep what commitments pay for."""

    region: Region = field(metadata=part(Region))
    replace: ReplaceMachine = field(metadata=part(ReplaceMachine))
    table: CoordinationTable = field(metadata=part(CoordinationTable))
    pause: FleetPause = field(metadata=part(FleetPause))
    commitments: Commitments = field(metadata=part(Commitments))


@dataclass(frozen=True)
class RolloutGateSettings(Settings):
    replace: ReplaceMachine = field(metadata=part(ReplaceMachine))
    table: CoordinationTable = field(metadata=part(CoordinationTable))
    pause: FleetPause = field(metadata=part(FleetPause))


@dataclass(frozen=True)
class RebalanceSettings(Settings):
    replace: ReplaceMachine = field(metadata=part(ReplaceMachine))
    table: CoordinationTable = field(metadata=part(CoordinationTable))
    pause: FleetPause = field(metadata=part(FleetPause))
    timing: EventSwapTiming = field(metadata=part(EventSwapTiming))


@dataclass(frozen=True)
class InterruptionSettings(Settings):
    interruption: InterruptionMachine = field(metadata=part(InterruptionMachine))
    notice: SpotNotice = field(metadata=part(SpotNotice))


@dataclass(frozen=True)
class SweepSettings(Settings):
    replace: ReplaceMachine = field(metadata=part(ReplaceMachine))
    interruption: InterruptionMachine = field(metadata=part(InterruptionMachine))
    rollout: RolloutMachine = field(metadata=part(RolloutMachine))
    table: CoordinationTable = field(metadata=part(CoordinationTable))


# handler string (stack/description.py) -> its function's settings class.
HANDLER_SETTINGS: dict[str, type[Settings]] = {
    "tasks.validate.handler": ValidateSettings,
    "tasks.launch_spot.handler": LaunchSpotSettings,
    "tasks.launch_on_demand.handler": SwapStepSettings,
    "tasks.check_spot.handler": NoSettings,
    "tasks.attach_spot.handler": SwapStepSettings,
    "tasks.retire_on_demand.handler": SwapStepSettings,
    "tasks.restore_group.handler": SwapStepSettings,
    "tasks.cleanup.handler": NoSettings,
    "tasks.raise_capacity.handler": SwapStepSettings,
    "tasks.release_spot.handler": SwapStepSettings,
    "tasks.scan.handler": SwapStarterSettings,
    "tasks.sweep.handler": SweepSettings,
    "tasks.launch_event.handler": SwapStarterSettings,
    "tasks.spot_events.on_interruption": InterruptionSettings,
    "tasks.spot_events.on_rebalance": RebalanceSettings,
    "tasks.rollout_plan.handler": SwapStarterSettings,
    "tasks.rollout_gate.handler": RolloutGateSettings,
    "tasks.rollout_checkpoint.handler": SwapStepSettings,
    "tasks.rollout_release.handler": SwapStepSettings,
}
