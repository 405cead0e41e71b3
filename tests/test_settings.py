"""Each function's settings (tasks/aws/settings.py) against the stack description, both ways: what the class
reads is what the function declares (or a runtime / override variable), what a handler's code reaches is in its
class, and nothing in tasks/ reads the environment on its own. Plus the one-line refusals of unusable values."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from infra.config import ConfigError, parse_settings
from stack.description import STACK, Function
from tasks.aws import settings as settings_module
from tasks.aws.settings import (
    HANDLER_SETTINGS,
    NoSettings,
    RebalanceSettings,
    Settings,
    SwapStarterSettings,
    SwapStepSettings,
    ValidateSettings,
)
from tasks.core.pause import PauseSettings
from tasks.core.settings import CommitmentSettings, SettingError, Source
from tasks.core.timing import Timing
from tests.handler_calls import ROOT, handler_calls

# Values every variable accepts, as a deployment sets them.
DEPLOYED = {
    "AWS_REGION": "us-east-1",
    "REPLACE_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:asg-optimizer-replace-instance",
    "INTERRUPTION_STATE_MACHINE_ARN":
        "arn:aws:states:us-east-1:123456789012:stateMachine:asg-optimizer-spot-interruption",
    "ROLLOUT_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:asg-optimizer-rollout",
    "COOLDOWN_TABLE": "asg-optimizer-cooldowns",
    "PAUSE_ALARMS": "api-5xx",
    "PAUSE_FAILURE_BUDGET": "3",
    "COMMITMENTS": "use",
    "SAVINGS_PLAN_RESERVE_PER_HOUR": "0",
}


def reached(handler: str) -> list[type[Settings]]:
    """The settings classes the handler's code can reach (tests/handler_calls.py follows every reference)."""
    prefix = f"{settings_module.__name__}."
    found = (getattr(settings_module, v.removeprefix(prefix)) for v in handler_calls(handler).visited
             if v.startswith(prefix))
    return [c for c in found if isinstance(c, type) and issubclass(c, Settings)]


def drift(function: Function, cls: type[Settings], reaches: list[type[Settings]]) -> list[str]:
    """Every way the function's settings class and its handler's reach disagree with the stack description."""
    read = {v.name: v.source for v in cls.variables()}
    declared = set(function.environment)
    problems = [f"{function.key}: {cls.__name__} reads {name}, which the stack does not declare"
                for name in sorted(n for n, source in read.items() if source is Source.STACK and n not in declared)]
    problems += [f"{function.key}: declares {name}, which {cls.__name__} does not read"
                 for name in sorted(declared - set(read))]
    problems += [f"{function.key}: declares {name}, which the stack must not set ({read[name].value})"
                 for name in sorted(declared & {n for n, source in read.items() if source is not Source.STACK})]
    problems += [f"{function.key}: its handler reaches {part.__name__}, which reads {variable.name}, not in "
                 f"{cls.__name__}" for part in reaches for variable in part.variables() if variable.name not in read]
    return problems


def test_every_function_of_the_stack_has_a_settings_class_and_no_other_handler_has() -> None:
    assert set(HANDLER_SETTINGS) == {f.handler for f in STACK.functions}


@pytest.mark.parametrize("function", STACK.functions, ids=lambda f: f.key)
def test_settings_match_the_stack_description_both_ways(function: Function) -> None:
    cls = HANDLER_SETTINGS[function.handler]
    assert drift(function, cls, reached(function.handler)) == []


def test_the_check_follows_the_handlers_code_into_the_adapters() -> None:
    """The reach is real: the scanner's code gets to the table through tasks.aws.coordination, the region through
    tasks.aws.commitments; check-spot gets to none."""
    scanner = {c.__name__ for c in reached("tasks.scan.handler")}
    assert {"CoordinationTable", "Region", "Commitments", "FleetPause", "ReplaceMachine"} <= scanner
    assert reached("tasks.check_spot.handler") == []


@pytest.mark.parametrize(("function", "cls", "problems"), [
    (replace(STACK.function("validate"), environment=("COOLDOWN_TABLE",)), ValidateSettings,
     ["validate: ValidateSettings reads COMMITMENTS, which the stack does not declare",
      "validate: ValidateSettings reads SAVINGS_PLAN_RESERVE_PER_HOUR, which the stack does not declare"]),
    (replace(STACK.function("check-spot"), environment=("COOLDOWN_TABLE",)), NoSettings,
     ["check-spot: declares COOLDOWN_TABLE, which NoSettings does not read"]),
    (replace(STACK.function("launch-spot"), environment=("COOLDOWN_TABLE", "AWS_REGION")),
     HANDLER_SETTINGS["tasks.launch_spot.handler"],
     ["launch-spot: declares AWS_REGION, which the stack must not set (runtime)"]),
    (replace(STACK.function("spot-rebalance"), environment=(*STACK.function("spot-rebalance").environment,
                                                             "SWAP_TIMING")), RebalanceSettings,
     ["spot-rebalance: declares SWAP_TIMING, which the stack must not set (override)"]),
], ids=["read-not-declared", "declared-not-read", "runtime-declared", "override-declared"])
def test_the_check_fails_on_a_wrong_description(function: Function, cls: type[Settings],
                                                problems: list[str]) -> None:
    assert drift(function, cls, reached(function.handler)) == problems


def test_the_check_fails_when_a_handler_reaches_more_than_its_class() -> None:
    """The scanner's handler checked against a class that holds only the table: every part it reaches beyond
    that is named."""
    problems = drift(replace(STACK.function("scanner"), environment=("COOLDOWN_TABLE",)), SwapStepSettings,
                     reached("tasks.scan.handler"))
    assert "scanner: its handler reaches ReplaceMachine, which reads REPLACE_STATE_MACHINE_ARN, not in " \
           "SwapStepSettings" in problems
    assert "scanner: its handler reaches Region, which reads AWS_REGION, not in SwapStepSettings" in problems


def test_runtime_variables_are_reserved_and_overrides_are_settable_through_the_stack() -> None:
    """A runtime variable is one Lambda sets and the stack setting `environment` refuses; an override is one it
    accepts (unset, the function's default is AWS's own behaviour)."""
    variables = {v for cls in HANDLER_SETTINGS.values() for v in cls.variables()}
    runtime = sorted(v.name for v in variables if v.source is Source.RUNTIME)
    overrides = sorted(v.name for v in variables if v.source is Source.OVERRIDE)
    assert runtime == ["AWS_REGION"] and overrides == ["SPOT_NOTICE_SECONDS", "SWAP_TIMING"]
    for name in runtime:
        with pytest.raises(ConfigError, match="is not a settable environment variable name"):
            parse_settings({"environment": {name: "x"}})
    assert parse_settings({"environment": {name: "1" for name in overrides}}).environment == {
        name: "1" for name in overrides}


def test_nothing_in_tasks_reads_the_environment_but_the_settings_module() -> None:
    allowed = ROOT / "tasks" / "aws" / "settings.py"
    readers = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tasks").rglob("*.py")) if p != allowed
               and re.search(r"\bos\.environ\b|\bgetenv\b|from os import|import os\b", p.read_text())]
    assert readers == []


def test_a_deployed_environment_reads_as_its_values() -> None:
    starter = SwapStarterSettings.from_env(DEPLOYED)
    assert starter.region.name == "us-east-1" and starter.table.name == "asg-optimizer-cooldowns"
    assert starter.replace.arn == DEPLOYED["REPLACE_STATE_MACHINE_ARN"]
    assert starter.pause.settings == PauseSettings(("api-5xx",), 3)
    assert starter.commitments.settings == CommitmentSettings(True, 0.0)
    rebalance = RebalanceSettings.from_env({**DEPLOYED, "SWAP_TIMING": json.dumps({"boot_poll_seconds": 2})})
    assert rebalance.timing.timing == Timing(boot_poll_seconds=2)
    assert RebalanceSettings.from_env(DEPLOYED).timing.timing == Timing()  # unset: the defaults


KNOWN_TIMING_KEYS = ", ".join(sorted(Timing.__dataclass_fields__))


@pytest.mark.parametrize(("cls", "changed", "message"), [
    (SwapStepSettings, {"COOLDOWN_TABLE": ""},
     "COOLDOWN_TABLE is not set: the function was deployed without the cooldown table"),
    (SwapStarterSettings, {"AWS_REGION": " "}, "AWS_REGION is not set: the Lambda runtime sets it in every function"),
    (SwapStarterSettings, {"REPLACE_STATE_MACHINE_ARN": ""},
     "REPLACE_STATE_MACHINE_ARN is not set: the function was deployed without the state machine ARN"),
    (SwapStarterSettings, {"PAUSE_FAILURE_BUDGET": "many"},
     "PAUSE_FAILURE_BUDGET: expected a whole number of failed swaps per hour (0 or more), got 'many'"),
    (SwapStarterSettings, {"COMMITMENTS": "maybe"}, "COMMITMENTS='maybe': expected 'use' or 'ignore'"),
    (ValidateSettings, {"SAVINGS_PLAN_RESERVE_PER_HOUR": "nan"},
     "SAVINGS_PLAN_RESERVE_PER_HOUR='nan': expected dollars per hour, 0 or more"),
    (HANDLER_SETTINGS["tasks.spot_events.on_interruption"], {"SPOT_NOTICE_SECONDS": "soon"},
     "SPOT_NOTICE_SECONDS='soon': expected a whole number of seconds, 1 or more"),
    (RebalanceSettings, {"SWAP_TIMING": '{"boot_polls": 3}'},
     f"SWAP_TIMING='{{\"boot_polls\": 3}}': unknown timing key 'boot_polls'; known keys: {KNOWN_TIMING_KEYS}"),
    (RebalanceSettings, {"SWAP_TIMING": "[2]"}, "SWAP_TIMING='[2]': expected a JSON object"),
], ids=["missing-table", "blank-region", "missing-arn", "budget", "commitments", "reserve", "notice", "timing-key",
        "timing-json"])
def test_an_unusable_value_fails_with_one_line_naming_variable_and_value(cls: type[Settings],
                                                                         changed: dict[str, str],
                                                                         message: str) -> None:
    with pytest.raises(SettingError) as raised:
        cls.from_env({**DEPLOYED, **changed})
    assert str(raised.value) == message


def test_a_handler_checks_its_settings_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler decorator reads the function's settings first: a garbled notice fails the interruption
    handler before it parses its event or calls AWS (an empty event would fail otherwise)."""
    from tasks.spot_events import on_interruption

    monkeypatch.setenv("INTERRUPTION_STATE_MACHINE_ARN", DEPLOYED["INTERRUPTION_STATE_MACHINE_ARN"])
    monkeypatch.setenv("SPOT_NOTICE_SECONDS", "soon")
    with pytest.raises(SettingError, match=r"^SPOT_NOTICE_SECONDS='soon': "):
        on_interruption({}, None)


def test_settings_are_frozen() -> None:
    settings = SwapStepSettings.from_env(DEPLOYED)
    with pytest.raises(AttributeError):
        settings.table = settings.table  # type: ignore[misc]
