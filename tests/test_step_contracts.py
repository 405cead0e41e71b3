"""The step contracts (tasks/core/steps.py) against the deployed definitions: every Required key a Task state's
handler reads is produced upstream on every path to it, each Task's contract is that of the handler its
Resource deploys (stack/description.py), and a definition that breaks a contract is reported by state and key."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import typing
from collections.abc import Callable
from typing import Any

import pytest

from stack.description import INTERRUPTION, REPLACE, ROLLOUT, STACK, StateMachine
from stack.render import render_state_machine
from tasks.core.steps import InterruptionRequest, RolloutRequest, SwapRequest, SwapTiming
from tasks.core.timing import Timing
from tests.step_contract_walker import (
    Contract,
    Field,
    Record,
    Resolver,
    UnsupportedAsl,
    Walk,
    handler_contract,
    record_of,
    shortfalls,
    values_of,
    walk,
)

EXECUTION_INPUTS: dict[str, Any] = {REPLACE: SwapRequest, INTERRUPTION: InterruptionRequest, ROLLOUT: RolloutRequest}
WALKED = [STACK.state_machine(key) for key in EXECUTION_INPUTS]


def function_arn(key: str) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:function:{STACK.function(key).name()}"


def machine_arn(key: str) -> str:
    return f"arn:aws:states:us-east-1:123456789012:stateMachine:{STACK.state_machine(key).name()}"


def handler_of(key: str) -> Callable[..., Any]:
    module, name = STACK.function(key).handler.rsplit(".", 1)
    return typing.cast(Callable[..., Any], getattr(importlib.import_module(module), name))


def resolver(replace: dict[str, Contract] | None = None) -> Resolver:
    by_arn = {function_arn(f.key): f.key for f in STACK.functions}
    machines = {machine_arn(key): key for key in EXECUTION_INPUTS}

    def function(arn: str) -> Contract | None:
        key = by_arn.get(arn)
        if key is None:
            return None
        return (replace or {}).get(key) or handler_contract(handler_of(key), key)

    def machine_input(arn: str) -> frozenset[Any] | None:
        key = machines.get(arn)
        return values_of(EXECUTION_INPUTS[key]) if key else None

    return Resolver(function, machine_input)


def rendered(machine: StateMachine) -> dict[str, Any]:
    arns = {f.key: function_arn(f.key) for f in STACK.functions}
    children = {m.key: machine_arn(m.key) for m in STACK.state_machines}
    return typing.cast(dict[str, Any], json.loads(render_state_machine(machine, arns, children)))


def walked(machine: StateMachine, definition: dict[str, Any] | None = None,
           replace: dict[str, Contract] | None = None) -> Walk:
    start = [record_of(EXECUTION_INPUTS[machine.key])]
    return walk(definition or rendered(machine), start, resolver(replace), f"{machine.key}: ")


def edited(key: str, change: Callable[[dict[str, Any]], None]) -> tuple[StateMachine, dict[str, Any]]:
    machine = STACK.state_machine(key)
    definition = copy.deepcopy(rendered(machine))
    change(definition["States"])
    return machine, definition


@pytest.mark.parametrize("machine", WALKED, ids=lambda m: m.key)
def test_every_required_input_key_is_produced_on_every_path(machine: StateMachine) -> None:
    assert walked(machine).problems == []


@pytest.mark.parametrize("machine", WALKED, ids=lambda m: m.key)
def test_every_task_function_declares_its_contract(machine: StateMachine) -> None:
    """A handler of a workflow state takes and returns TypedDicts (tasks/core/steps.py), not bare dicts: the walk
    reads its contract from these annotations."""
    for key in sorted(set(machine.substitutions.values())):
        hints = typing.get_type_hints(handler_of(key))
        for role in ("event", "return"):
            kinds = typing.get_args(hints[role]) or (hints[role],)
            assert all(typing.is_typeddict(k) for k in kinds), f"{key} {role}: {hints[role]}"


def test_every_state_machine_is_walked() -> None:
    assert {m.key for m in WALKED} == {m.key for m in STACK.state_machines}


def test_the_swap_state_carries_every_timing_key() -> None:
    assert set(SwapTiming.__required_keys__) == {f.name for f in dataclasses.fields(Timing)}
    assert set(Timing().fields()) == set(Timing().flat())


# --- it fails: definitions and contracts that break -----------------------------------------------------------------


def test_a_result_put_under_another_key_is_reported_where_it_is_read() -> None:
    machine, definition = edited(REPLACE, lambda s: s["LaunchSpot"].update(ResultPath="$.launch"))
    problems = walked(machine, definition).problems
    assert ("replace-instance: CheckSpot (check-spot): spot is not produced on every path "
            "(missing on the path through WaitForBoot)") in problems
    assert any(p.startswith("replace-instance: AttachSpot (attach-spot): spot is not produced") for p in problems)


def test_a_state_removed_is_reported_with_the_keys_it_produced() -> None:
    def without_validate(states: dict[str, Any]) -> None:
        del states["Validate"]
        states["HasStartDelay"]["Default"] = states["StartDelay"]["Next"] = "Market"
        for rule in states["HasStartDelay"]["Choices"]:
            rule["Next"] = "Market" if rule["Next"] == "Validate" else rule["Next"]

    machine, definition = edited(REPLACE, without_validate)
    problems = walked(machine, definition).problems
    assert ("replace-instance: LaunchSpot (launch-spot): platform_details is not produced on every path "
            "(missing on the path through Market)") in problems
    assert any("WaitForBoot: SecondsPath $.boot_poll_seconds is not produced" in p for p in problems)


def test_a_key_the_producer_no_longer_returns_is_reported_at_its_reader() -> None:
    """How `platform_details` was read by LaunchSpot but not produced by Validate."""
    validate = handler_contract(handler_of("validate"), "validate")
    (state,) = validate.result
    assert isinstance(state, Record)
    without = Record(tuple((k, f) for k, f in state.fields if k != "platform_details"))
    problems = walked(STACK.state_machine(REPLACE),
                      replace={"validate": dataclasses.replace(validate, result=frozenset({without}))}).problems
    assert ("replace-instance: LaunchSpot (launch-spot): platform_details is not produced on every path "
            "(missing on the path through Market)") in problems
    assert all("platform_details" in p for p in problems)


def test_an_outcome_not_routed_away_reaches_the_steps_that_need_a_launched_spot() -> None:
    machine, definition = edited(REPLACE, lambda s: s["Launched"].update(Choices=s["Launched"]["Choices"][:1]))
    problems = walked(machine, definition).problems
    assert ("replace-instance: CheckSpot (check-spot): spot.spot_instance_id is not produced on every path "
            "(missing on the path through WaitForBoot)") in problems  # quota-exceeded and refused carry none


def test_a_poll_interval_read_from_a_missing_result_is_reported() -> None:
    machine, definition = edited(REPLACE, lambda s: s["RetireOnDemand"].update(ResultPath="$.retired"))
    problems = walked(machine, definition).problems
    assert ("replace-instance: WaitForGroup: SecondsPath $.retire.wait_seconds is not produced on the path "
            "through Retired") in problems


def test_parameters_that_drop_a_required_key_are_reported() -> None:
    machine, definition = edited(INTERRUPTION,
                                 lambda s: s["RestoreAfterFailure"]["Parameters"].pop("asg_name.$"))
    assert sorted(walked(machine, definition).problems) == [
        f"spot-interruption: RestoreAfterFailure (restore-group): asg_name is not produced on every path "
        f"(missing on the path through {via})" for via in ("RaiseCapacity", "ReleaseSpot")]


def test_a_construct_the_walker_does_not_model_fails_loudly() -> None:
    machine, definition = edited(REPLACE, lambda s: s["CheckSpot"].update(InputPath="$.spot"))
    with pytest.raises(UnsupportedAsl, match=r"replace-instance: CheckSpot: Task \['InputPath'\]"):
        walked(machine, definition)
    machine, definition = edited(REPLACE, lambda s: s["LaunchSpot"].update(ResultPath="$.spot.launched"))
    with pytest.raises(UnsupportedAsl, match=r"LaunchSpot: ResultPath '\$.spot.launched'"):
        walked(machine, definition)


def test_an_unknown_resource_fails_loudly() -> None:
    machine, definition = edited(REPLACE, lambda s: s["CheckSpot"].update(
        Resource="arn:aws:lambda:us-east-1:123456789012:function:somebody-else"))
    with pytest.raises(UnsupportedAsl, match="CheckSpot: no handler contract for"):
        walked(machine, definition)


class Inner(typing.TypedDict):
    a: str


class Outer(typing.TypedDict):
    inner: Inner


def test_a_nested_field_is_checked_against_its_contract() -> None:
    """The walker's own rule, pure: a record lacking a nested Required key is named with its path."""
    given = Record((("inner", Field(True, frozenset({Record(())}))),))
    assert shortfalls(given, values_of(Outer), "") == ["inner.a is not produced on every path"]


def test_a_child_input_that_misses_the_child_contract_is_reported() -> None:
    def renamed(states: dict[str, Any]) -> None:
        states["RunBatch"]["ItemProcessor"]["States"]["ReplaceInstance"]["Parameters"]["Input.$"] = "$.inputs"

    machine, definition = edited(ROLLOUT, renamed)
    assert walked(machine, definition).problems == [
        "rollout: RunBatch/ReplaceInstance (child input): Input is not produced on every path (missing on the path "
        "through an item of $.current)"]


def test_a_child_input_key_the_child_needs_is_checked() -> None:
    def only_the_group(states: dict[str, Any]) -> None:
        parameters = states["RunRollback"]["ItemProcessor"]["States"]["ReplaceBack"]["Parameters"]
        del parameters["Input.$"]
        parameters["Input"] = {"asg_name.$": "$.input.asg_name"}

    machine, definition = edited(ROLLOUT, only_the_group)
    assert walked(machine, definition).problems == [
        "rollout: RunRollback/ReplaceBack (child input): Input.instance_id is not produced on every path (missing "
        "on the path through an item of $.current)"]
