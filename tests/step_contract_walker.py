"""Walk a rendered ASL definition with the step contracts (tasks/core/steps.py) and report every Required key a
Task state's handler reads that some path to it does not produce.

Data is modelled as a set of alternative records (one per way of reaching a state), each key with whether it is
present on that path and the values it may hold (a record from a TypedDict, a list of them, or a leaf: a scalar
or an unknown value, with its Literal values when the contract names them). Flows are propagated to a fixpoint,
so loops (poll and wait) are covered. What it supports, as these definitions use it:

- Task: a Lambda function ARN (the handler's `event` and return annotations are its contract), Lambda
  `invoke.waitForTaskToken` (input: Parameters.Payload; result: unknown) and `states:startExecution.sync:2`
  (Parameters.Input must satisfy the child machine's execution input contract); Parameters, ResultSelector,
  ResultPath `$` or `$.key`, Catch (an error record {Error, Cause} at its ResultPath), Retry (no effect on data);
- Pass with Parameters and/or ResultPath; Wait (SecondsPath must be present on every path); Succeed (OutputPath);
  Fail; Map INLINE with ItemsPath over a list of records (its result: the list of the item flows' outputs);
- Choice: narrowing on `StringEquals`/`BooleanEquals` of a path whose value has Literal values (e.g.
  `$.spot.outcome`); any other rule is taken as possibly true and possibly false, which can only report more.

Anything else (InputPath, OutputPath on a Task, Result, ItemSelector, a nested ResultPath, an unknown
intrinsic or context field, an unknown Resource) raises UnsupportedAsl naming the state: never skipped.
Scalar types are mypy's to check in the handlers; the walker checks keys (nested records and lists too).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_ROUNDS = 200


class UnsupportedAsl(ValueError):
    pass


@dataclass(frozen=True)
class Leaf:
    literals: frozenset[Any] | None = None  # None: any value


@dataclass(frozen=True)
class ListOf:
    items: frozenset[Value]


@dataclass(frozen=True)
class Field:
    present: bool  # on every path that reaches here
    values: frozenset[Value]


@dataclass(frozen=True)
class Record:
    fields: tuple[tuple[str, Field], ...]
    via: str = ""  # the last state this flow came through (names the path in a report)

    def get(self, key: str) -> Field | None:
        return dict(self.fields).get(key)

    def with_field(self, key: str, value: Field) -> Record:
        return Record(tuple(sorted({**dict(self.fields), key: value}.items())), self.via)

    def through(self, via: str) -> Record:
        return Record(self.fields, via)


Value = Leaf | ListOf | Record
UNKNOWN = Leaf()


def values_of(annotation: Any) -> frozenset[Value]:
    """The values a contract annotation admits."""
    if typing.is_typeddict(annotation):
        return frozenset({record_of(annotation)})
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return frozenset().union(*(values_of(a) for a in typing.get_args(annotation)))
    if origin is typing.Literal:
        return frozenset({Leaf(frozenset(typing.get_args(annotation)))})
    if origin in (list, tuple) or (origin is not None and getattr(origin, "__name__", "") == "Sequence"):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return frozenset({ListOf(frozenset().union(*(values_of(a) for a in args)) if args else frozenset({UNKNOWN}))})
    return frozenset({UNKNOWN})


def record_of(typed_dict: Any) -> Record:
    hints = typing.get_type_hints(typed_dict)
    required = typed_dict.__required_keys__
    return Record(tuple(sorted((k, Field(k in required, values_of(t))) for k, t in hints.items())))


def join(a: Field | None, b: Field | None) -> Field | None:
    if a is None or b is None:
        one = a or b
        return Field(False, one.values) if one else None
    return Field(a.present and b.present, a.values | b.values)


# --- paths -----------------------------------------------------------------------------------------------------------

CONTEXT = {"$$.Execution.Name", "$$.Execution.Id", "$$.Execution.StartTime", "$$.StateMachine.Id", "$$.Task.Token"}
INTRINSICS = ("States.StringToJson(",)


def resolve(path: str, record: Record, state: str) -> Field:
    """The value at a JSONPath of one flow: `$` or `$.a.b` (no wildcards, no indexes)."""
    if path == "$":
        return Field(True, frozenset({record}))
    if not path.startswith("$.") or any(c in path for c in "[]*@?"):
        raise UnsupportedAsl(f"{state}: path {path!r} (only $ and $.key.key are supported)")
    current = Field(True, frozenset({record}))
    for key in path[2:].split("."):
        present, values = current.present, set()
        for value in current.values:
            found = value.get(key) if isinstance(value, Record) else None
            if found is None:
                present = False  # absent here, or inside a value of unknown shape
                if not isinstance(value, Record):
                    values.add(UNKNOWN)
                continue
            present = present and found.present
            values |= found.values
        current = Field(present, frozenset(values))
    return current


def build(template: Mapping[str, Any], record: Record, state: str) -> Record:
    """Parameters, ResultSelector or a Payload, built for one flow."""
    fields: dict[str, Field] = {}
    for key, value in template.items():
        if key.endswith(".$"):
            if not isinstance(value, str):
                raise UnsupportedAsl(f"{state}: {key} is not a path")
            if value.startswith("$$"):
                if value not in CONTEXT:
                    raise UnsupportedAsl(f"{state}: context field {value!r}")
                fields[key[:-2]] = Field(True, frozenset({UNKNOWN}))
            elif value.startswith("States."):
                if not value.startswith(INTRINSICS):
                    raise UnsupportedAsl(f"{state}: intrinsic {value!r}")
                fields[key[:-2]] = Field(True, frozenset({UNKNOWN}))
            else:
                fields[key[:-2]] = resolve(value, record, state)
        elif isinstance(value, dict):
            fields[key] = Field(True, frozenset({build(value, record, state)}))
        elif isinstance(value, str | bool):
            fields[key] = Field(True, frozenset({Leaf(frozenset({value}))}))
        else:
            fields[key] = Field(True, frozenset({UNKNOWN}))
    return Record(tuple(sorted(fields.items())))


def place(record: Record, result_path: str | None, result: Field, state: str) -> frozenset[Record]:
    """A flow after a result is put at `result_path`."""
    if result_path == "$":
        outs = {v for v in result.values if isinstance(v, Record)}
        if len(outs) != len(result.values):
            raise UnsupportedAsl(f"{state}: a result of unknown shape at ResultPath $")
        return frozenset(outs)
    if not isinstance(result_path, str) or not result_path.startswith("$.") or "." in result_path[2:]:
        raise UnsupportedAsl(f"{state}: ResultPath {result_path!r} (only $ and $.key are supported)")
    return frozenset({record.with_field(result_path[2:], result)})


# --- contracts -------------------------------------------------------------------------------------------------------


def shortfalls(actual: Value, expected: frozenset[Value], where: str) -> list[str]:
    """Why `actual` satisfies none of the `expected` values ([] when one fits): Required keys it may lack, checked
    into nested records and lists; NotRequired keys are checked only for the shape of what they hold."""
    leaves = [e for e in expected if isinstance(e, Leaf)]
    if len(leaves) == len(expected) or (leaves and isinstance(actual, Leaf)):
        return []  # a scalar or a plain dict in the contract: its type is mypy's to check in the handlers
    best: list[str] | None = None
    for wanted in (e for e in expected if not isinstance(e, Leaf)):
        problems = _against(actual, wanted, where)
        if not problems:
            return []
        if best is None or len(problems) < len(best):
            best = problems
    return best or [f"{where} has no value of the contract's kind"]


def _against(actual: Value, wanted: Value, where: str) -> list[str]:
    if isinstance(wanted, Leaf):
        return []
    if isinstance(wanted, ListOf):
        if not isinstance(actual, ListOf):
            return [f"{where} is not known to be a list"]
        return [p for item in actual.items for p in shortfalls(item, wanted.items, f"{where}[]")]
    if not isinstance(actual, Record):
        return [f"{where} is not known to carry keys {', '.join(k for k, f in wanted.fields if f.present)}"]
    problems: list[str] = []
    for key, field in wanted.fields:
        got, at = actual.get(key), f"{where}.{key}" if where else key
        if field.present and (got is None or not got.present):
            problems.append(f"{at} is not produced on every path")
            continue
        if got is not None and not all(isinstance(v, Leaf) for v in field.values):
            problems += [p for v in got.values for p in shortfalls(v, field.values, at)]
    return problems


@dataclass(frozen=True)
class Contract:
    """A handler's: the values its event may be and the values it returns."""

    name: str
    event: frozenset[Value]
    result: frozenset[Value]


def handler_contract(function: Callable[..., Any], name: str) -> Contract:
    hints = typing.get_type_hints(function)
    return Contract(name, values_of(hints["event"]), values_of(hints["return"]))


# --- the walk --------------------------------------------------------------------------------------------------------

SUPPORTED = {
    "Task": {"Type", "Comment", "Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "Next",
             "End", "TimeoutSeconds"},
    "Pass": {"Type", "Comment", "Parameters", "ResultPath", "Next", "End"},
    "Choice": {"Type", "Comment", "Choices", "Default"},
    "Wait": {"Type", "Comment", "Seconds", "SecondsPath", "Next"},
    "Succeed": {"Type", "Comment", "OutputPath"},
    "Fail": {"Type", "Comment", "Error", "Cause", "ErrorPath", "CausePath"},
    "Map": {"Type", "Comment", "ItemsPath", "MaxConcurrency", "ItemProcessor", "ResultPath", "Next", "End"},
}
ERROR = Record((("Cause", Field(True, frozenset({UNKNOWN}))), ("Error", Field(True, frozenset({UNKNOWN})))))
SYNC_CHILD = "arn:aws:states:::states:startExecution.sync:2"
TOKEN_LAMBDA = "arn:aws:states:::lambda:invoke.waitForTaskToken"


@dataclass
class Resolver:
    """How a Task's Resource maps to a handler contract, and a state machine ARN to its input contract."""

    function: Callable[[str], Contract | None]  # by function ARN
    machine_input: Callable[[str], frozenset[Value] | None]  # by state machine ARN


@dataclass
class Walk:
    problems: list[str]
    outputs: frozenset[Record]  # what the flows that end give


def walk(definition: Mapping[str, Any], start: Iterable[Record], resolver: Resolver, label: str = "",
         origin: str = "the execution input") -> Walk:
    states: Mapping[str, Mapping[str, Any]] = definition["States"]
    for name, state in states.items():
        unsupported = set(state) - SUPPORTED.get(state.get("Type", ""), set())
        if state.get("Type") not in SUPPORTED or unsupported:
            raise UnsupportedAsl(f"{label}{name}: {state.get('Type')} {sorted(unsupported)}")
    into: dict[str, frozenset[Record]] = {definition["StartAt"]: frozenset(r.through(origin) for r in start)}
    problems: dict[str, None] = {}
    outputs: set[Record] = set()
    for _ in range(MAX_ROUNDS):
        changed = False
        for name, state in states.items():
            flows = into.get(name, frozenset())
            if not flows:
                continue
            edges, ended = _step(name, state, flows, resolver, f"{label}{name}", problems)
            outputs |= ended
            for target, records in edges:
                if target not in states:
                    raise UnsupportedAsl(f"{label}{name}: Next {target!r} is not a state")
                merged = into.get(target, frozenset()) | frozenset(r.through(name) for r in records)
                if merged != into.get(target, frozenset()):
                    into[target], changed = merged, True
        if not changed:
            return Walk(list(problems), frozenset(outputs))
    raise UnsupportedAsl(f"{label}: no fixpoint after {MAX_ROUNDS} rounds")


def _step(name: str, state: Mapping[str, Any], flows: frozenset[Record], resolver: Resolver, where: str,
          problems: dict[str, None]) -> tuple[list[tuple[str, frozenset[Record]]], set[Record]]:
    kind, edges, ended = state["Type"], [], set()
    if kind == "Choice":
        remaining = flows
        for rule in state["Choices"]:
            edges.append((rule["Next"], _narrowed(rule, remaining, True, where)))
            remaining = _narrowed(rule, remaining, False, where)
        if "Default" in state:
            edges.append((state["Default"], remaining))
        return [(t, rs) for t, rs in edges if rs], ended
    if kind == "Wait":
        if "SecondsPath" in state:
            for record in flows:
                if not resolve(state["SecondsPath"], record, where).present:
                    problems[f"{where}: SecondsPath {state['SecondsPath']} is not produced on the path through "
                             f"{record.via}"] = None
        return [(state["Next"], flows)], ended
    if kind == "Succeed":
        path = state.get("OutputPath", "$")
        for record in flows:
            ended |= place(record, "$", resolve(path, record, where), where) if path != "$" else {record}
        return edges, ended
    if kind == "Fail":
        return edges, ended
    if kind in ("Task", "Map"):
        for catch in state.get("Catch", []):
            edges.append((catch["Next"], frozenset().union(*(
                place(r, catch.get("ResultPath", "$"), Field(True, frozenset({ERROR})), where) for r in flows))))
    after: set[Record] = set()
    for record in flows:
        result = _result(state, record, resolver, where, problems)
        if kind == "Pass" and "Parameters" not in state:
            result = Field(True, frozenset({record}))
        after |= place(record, state.get("ResultPath", "$"), result, where)
    if state.get("End"):
        ended |= after
    else:
        edges.append((state["Next"], frozenset(after)))
    return edges, ended


def _result(state: Mapping[str, Any], record: Record, resolver: Resolver, where: str,
            problems: dict[str, None]) -> Field:
    kind = state["Type"]
    if kind == "Pass":
        return Field(True, frozenset({build(state.get("Parameters", {}), record, where)}))
    if kind == "Map":
        processor = state["ItemProcessor"]
        if processor.get("ProcessorConfig", {}).get("Mode", "INLINE") != "INLINE":
            raise UnsupportedAsl(f"{where}: Map mode other than INLINE")
        items = resolve(state["ItemsPath"], record, where)
        if not items.present:
            problems[f"{where}: ItemsPath {state['ItemsPath']} is not produced on the path through "
                     f"{record.via}"] = None
        item_records = set()
        for value in items.values:
            if not isinstance(value, ListOf) or not all(isinstance(i, Record) for i in value.items):
                raise UnsupportedAsl(f"{where}: ItemsPath {state['ItemsPath']} is not known to be a list of records")
            item_records |= {i for i in value.items if isinstance(i, Record)}
        inner = walk(processor, item_records, resolver, f"{where}/", f"an item of {state['ItemsPath']}")
        problems.update(dict.fromkeys(inner.problems))
        return Field(True, frozenset({ListOf(frozenset(inner.outputs))}))
    resource, parameters = state["Resource"], state.get("Parameters")
    if resource == SYNC_CHILD:
        child_input = build(parameters, record, where)
        arn = _static(parameters, "StateMachineArn", where)
        contract = resolver.machine_input(arn)
        if contract is None:
            raise UnsupportedAsl(f"{where}: no input contract for state machine {arn}")
        given = child_input.get("Input")
        if given is None or not given.present:
            _report(problems, where, "child input", ["Input is not produced on every path"], record)
        for value in given.values if given else frozenset():
            _report(problems, where, "child input", shortfalls(value, contract, "Input"), record)
        result = Record(tuple((k, Field(True, frozenset({UNKNOWN}))) for k in ("Input", "Name", "Output", "Status")))
    elif resource == TOKEN_LAMBDA:
        arn = _static(parameters, "FunctionName", where)
        payload = parameters.get("Payload") if parameters else None
        if not isinstance(payload, dict):
            raise UnsupportedAsl(f"{where}: waitForTaskToken without a Payload object")
        _check(resolver, arn, build(payload, record, where), where, problems, record)
        return Field(True, frozenset({UNKNOWN}))  # what `rollout resume` sends: no contract
    else:
        if resource.startswith("arn:aws:states:::"):
            raise UnsupportedAsl(f"{where}: service integration {resource}")
        given_input = build(parameters, record, where) if parameters is not None else record
        contract = _check(resolver, resource, given_input, where, problems, record)
        if "ResultSelector" in state:
            raise UnsupportedAsl(f"{where}: ResultSelector on a Lambda result")
        return Field(True, contract.result)
    selector = state.get("ResultSelector")
    return Field(True, frozenset({build(selector, result, where) if selector else result}))


def _static(parameters: Mapping[str, Any] | None, key: str, where: str) -> str:
    value = (parameters or {}).get(key)
    if not isinstance(value, str):
        raise UnsupportedAsl(f"{where}: {key} must be a static ARN")
    return value


def _check(resolver: Resolver, arn: str, given: Record, where: str, problems: dict[str, None],
           record: Record) -> Contract:
    contract = resolver.function(arn)
    if contract is None:
        raise UnsupportedAsl(f"{where}: no handler contract for {arn}")
    _report(problems, where, contract.name, shortfalls(given, contract.event, ""), record)
    return contract


def _report(problems: dict[str, None], where: str, name: str, found: list[str], record: Record) -> None:
    for problem in found:
        problems[f"{where} ({name}): {problem} (missing on the path through {record.via})"] = None


def _narrowed(rule: Mapping[str, Any], flows: frozenset[Record], outcome: bool, where: str) -> frozenset[Record]:
    """The flows for which the rule may evaluate to `outcome`, each narrowed to the values that let it: only a
    `StringEquals`/`BooleanEquals` of a path to Literal values narrows; any other rule keeps every flow whole."""
    if set(rule) - {"Next"} == {"Not"}:
        return _narrowed(rule["Not"], flows, not outcome, where)
    if set(rule) - {"Next"} == {"Variable", "IsPresent"}:
        present = bool(rule["IsPresent"]) == outcome
        keys = _keys(rule["Variable"], where)
        kept = (_presence(r, keys, present) for r in flows)
        return frozenset(r for r in kept if isinstance(r, Record))
    tests = [k for k in ("StringEquals", "BooleanEquals") if k in rule]
    if "Variable" not in rule or len(tests) != 1:
        return flows
    wanted, path = rule[tests[0]], rule["Variable"]
    if not path.startswith("$.") or any(c in path for c in "[]*@?"):
        raise UnsupportedAsl(f"{where}: Choice Variable {path!r}")
    kept = (_narrow(r, path[2:].split("."), lambda v: (v == wanted) == outcome) for r in flows)
    return frozenset(r for r in kept if isinstance(r, Record))


def _keys(path: str, where: str) -> list[str]:
    if not path.startswith("$.") or any(c in path for c in "[]*@?"):
        raise UnsupportedAsl(f"{where}: Choice Variable {path!r}")
    return path[2:].split(".")


def _presence(value: Value, keys: list[str], present: bool) -> Value | None:
    """`value` on the branch where the path under `keys` is (or is not) present: marked present, or dropped when
    it is present on every path and the branch needs it absent."""
    if not isinstance(value, Record):  # of unknown shape: on the present branch, the path is there
        return _chain(keys) if present else value
    found = value.get(keys[0])
    if found is None:
        return None if present else value
    if len(keys) == 1:
        if not present:
            return None if found.present else value
        return value.with_field(keys[0], Field(True, found.values))
    inner = frozenset(v for v in (_presence(v, keys[1:], present) for v in found.values) if v is not None)
    if not inner:
        return None if present or found.present else value
    return value.with_field(keys[0], Field(found.present or present, inner))


def _chain(keys: list[str]) -> Record:
    inner: Value = UNKNOWN
    for key in reversed(keys):
        inner = Record(((key, Field(True, frozenset({inner}))),))
    return inner


def _narrow(value: Value, keys: list[str], fits: Callable[[Any], bool]) -> Value | None:
    """`value` with the alternatives under `keys` that cannot fit dropped (None: none can)."""
    if not keys:
        if isinstance(value, Leaf) and value.literals is not None:
            return value if any(fits(v) for v in value.literals) else None
        return value
    found = value.get(keys[0]) if isinstance(value, Record) else None
    if found is None or not isinstance(value, Record):
        return value  # absent or of unknown shape: the rule may go either way
    left = frozenset(v for v in (_narrow(v, keys[1:], fits) for v in found.values) if v is not None)
    return value.with_field(keys[0], Field(found.present, left)) if left else None
