"""An execution as an operator reads it: the states entered with their durations, the path with its loops
counted, and the error with the failed step's own message instead of the raw Lambda error JSON.

Pure: built from DescribeExecution and GetExecutionHistory responses, so the live view of `replace --wait`,
`show` and the tests all read the same facts the console shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from stack.description import INTERRUPTION

ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
SWAPPED = "swapped"
# The workflow's Succeed state for a finished swap. It has another (NoCapacity) for an execution that ends well
# without swapping: its output then carries the outcome (`{"outcome": "no-capacity", "why": ...}`).
SWAPPED_STATE = "Swapped"
# History events that carry a failed attempt of a step (its error and cause), whether caught or not.
_FAILED_EVENTS = {
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "LambdaFunctionTimedOut": "lambdaFunctionTimedOutEventDetails",
    "LambdaFunctionStartFailed": "lambdaFunctionStartFailedEventDetails",
    "LambdaFunctionScheduleFailed": "lambdaFunctionScheduleFailedEventDetails",
    "TaskFailed": "taskFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
}
_END_EVENTS = {
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
}


# What an execution is, from its state machine: a swap (replace-instance: scheduled, manual, launch, rebalance)
# or an interruption fallback (spot-interruption: on-demand capacity in before a warned spot goes).
SWAP, FALLBACK = "swap", "fallback"
# A fallback that got its replacement capacity in; one whose spot had already left ends `nothing-to-replace`.
REPLACED, NOTHING_TO_REPLACE = "replaced", "nothing-to-replace"
GOOD_OUTCOMES = (SWAPPED, REPLACED)


def kind_of(execution_arn: str) -> str:
    """`fallback` for an execution of the spot-interruption state machine, else `swap` (an execution ARN names
    its state machine: arn:aws:states:<region>:<account>:execution:<state machine>:<name>)."""
    parts = execution_arn.split(":")
    machine = parts[6] if len(parts) > 7 else ""
    return FALLBACK if machine.endswith(f"-{INTERRUPTION}") else SWAP


def outcome_of(status: str, output: Mapping[str, Any] | None, kind: str = SWAP) -> str:
    """`swapped`, the outcome a successful execution reports instead (`no-capacity`), or the status
    (RUNNING, FAILED, TIMED_OUT, ABORTED): SUCCEEDED alone does not mean an instance was swapped. A fallback
    that succeeded is `replaced`, or `nothing-to-replace` when it found nothing to raise."""
    if status != "SUCCEEDED":
        return status
    if kind == FALLBACK:
        return REPLACED if (output or {}).get("raised") else NOTHING_TO_REPLACE
    reported = (output or {}).get("outcome")
    return reported if isinstance(reported, str) and reported != "launched" else SWAPPED


def not_swapped_why(outcome: str, output: Mapping[str, Any] | None) -> str | None:
    """Why a successful execution did not swap (`OnDemandFloor: ASG api keeps 1 on-demand ...` for a refusal),
    or None when it swapped or did not succeed."""
    if outcome in (*GOOD_OUTCOMES, "RUNNING", "FAILED", "TIMED_OUT", "ABORTED"):
        return None
    why, reason = (output or {}).get("why"), (output or {}).get("reason")
    if not isinstance(why, str):
        return None
    return f"{reason}: {why}" if isinstance(reason, str) else why


def console_url(region: str, execution_arn: str) -> str:
    """The execution's page in the Step Functions console (graph, events, input and output of every step)."""
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


def readable_cause(cause: str | None) -> str:
    """A Lambda error cause is JSON (`errorMessage`, `errorType`, `stackTrace`): keep the message, which our
    handlers write for people; any other cause is shown as it is."""
    if not cause:
        return ""
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(parsed, Mapping) and isinstance(parsed.get("errorMessage"), str):
        return parsed["errorMessage"]
    return cause


@dataclass(frozen=True)
class Step:
    """One entry into a state. `visit` counts entries into the same state (2 = the second time round a loop)."""

    name: str
    kind: str  # Task, Wait, Choice, Succeed, Fail, ...
    entered: datetime
    exited: datetime | None
    visit: int
    error: str | None = None  # a failed attempt inside this step (caught, retried or fatal)

    def seconds(self, now: datetime) -> float:
        return ((self.exited or now) - self.entered).total_seconds()


@dataclass(frozen=True)
class Timeline:
    name: str
    arn: str
    status: str
    started: datetime
    stopped: datetime | None
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()
    error: str | None = None
    cause: str | None = None  # readable: the failed step's own message
    failed_in: str | None = None  # the state whose failure the execution reports

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def kind(self) -> str:
        return kind_of(self.arn)

    @property
    def outcome(self) -> str:
        """As `outcome_of`, and a success that did not end in the Swapped state is never `swapped`."""
        found = outcome_of(self.status, self.output, self.kind)
        if found == SWAPPED and self.steps and self.steps[-1].name != SWAPPED_STATE:
            return self.steps[-1].name
        return found

    @property
    def current(self) -> str | None:
        """The state the execution is in while it runs."""
        return self.steps[-1].name if self.steps and not self.ended else None

    def seconds(self, now: datetime) -> float:
        return ((self.stopped or now) - self.started).total_seconds()

    def path(self) -> str:
        return render_path(compress([s.name for s in self.steps]))

    def visits(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step.name] = counts.get(step.name, 0) + 1
        return counts

    def as_dict(self, now: datetime, region: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "arn": self.arn,
            "kind": self.kind,
            "status": self.status,
            "outcome": self.outcome,
            "started": self.started.isoformat(),
            "stopped": self.stopped.isoformat() if self.stopped else None,
            "seconds": round(self.seconds(now), 3),
            "input": self.input,
            "path": self.path(),
            "steps": [
                {"state": s.name, "type": s.kind, "visit": s.visit, "entered": s.entered.isoformat(),
                 "seconds": round(s.seconds(now), 3), "running": s.exited is None and not self.ended,
                 "error": s.error}
                for s in self.steps
            ],
            "error": self.error,
            "cause": self.cause,
            "failed_in": self.failed_in,
            "output": self.output,
            "console_url": console_url(region, self.arn),
        }


def json_object(raw: str | None) -> dict[str, Any]:
    try:
        parsed = json.loads(raw or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def build_timeline(described: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> Timeline:
    """`described` = DescribeExecution; `events` = GetExecutionHistory events, oldest first."""
    steps: list[Step] = []
    visits: dict[str, int] = {}
    failures: list[tuple[str | None, str, str]] = []  # (state, error, cause) of every failed attempt
    end_error: tuple[str, str] | None = None
    for event in events:
        kind, at = event["type"], event["timestamp"]
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            visits[name] = visits.get(name, 0) + 1
            steps.append(Step(name, kind.removesuffix("StateEntered"), at, None, visits[name]))
        elif kind.endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            for index in range(len(steps) - 1, -1, -1):
                if steps[index].name == name and steps[index].exited is None:
                    steps[index] = _with(steps[index], exited=at)
                    break
        elif kind in _FAILED_EVENTS:
            details = event.get(_FAILED_EVENTS[kind], {})
            state = steps[-1].name if steps else None
            error = details.get("error", kind)
            failures.append((state, error, details.get("cause", "")))
            if steps:
                steps[-1] = _with(steps[-1], error=error)
        elif kind in _END_EVENTS:
            details = event.get(_END_EVENTS[kind], {})
            end_error = (details.get("error", ""), details.get("cause", ""))
            if steps and steps[-1].exited is None:  # a Fail state has no StateExited event
                steps[-1] = _with(steps[-1], exited=at)
        elif kind == "ExecutionSucceeded" and steps and steps[-1].exited is None:
            steps[-1] = _with(steps[-1], exited=at)
    status = described["status"]
    error = described.get("error") or (end_error[0] if end_error else None)
    cause = described.get("cause") or (end_error[1] if end_error else None)
    # The failure the execution reports is the first attempt that failed with the same error (the workflow
    # carries the failed step's error and cause through Cleanup to its Fail state).
    failed_in = next((state for state, err, _ in failures if err == error), None) if error else None
    if error and failed_in is None and steps:
        failed_in = steps[-1].name
    return Timeline(
        name=described["name"],
        arn=described["executionArn"],
        status=status,
        started=described["startDate"],
        stopped=described.get("stopDate"),
        input=json_object(described.get("input")),
        output=json_object(described.get("output")),
        steps=tuple(steps),
        error=error or None,
        cause=readable_cause(cause) or None,
        failed_in=failed_in if status in ("FAILED", "TIMED_OUT", "ABORTED") else None,
    )


def _with(step: Step, **changes: Any) -> Step:
    return replace(step, **changes)


def compress(names: Sequence[str]) -> list[tuple[tuple[str, ...], int]]:
    """The path as (block, repeats) segments: a block of states entered several times in a row is one segment,
    so `WaitForBoot, CheckSpot, SpotReady` polled four times reads as that block x4. Shortest block first."""
    segments: list[tuple[tuple[str, ...], int]] = []
    index = 0
    while index < len(names):
        best: tuple[tuple[str, ...], int] = ((names[index],), 1)
        for size in range(1, (len(names) - index) // 2 + 1):
            block = tuple(names[index:index + size])
            repeats = 1
            while tuple(names[index + repeats * size:index + (repeats + 1) * size]) == block:
                repeats += 1
            if repeats > 1:
                best = (block, repeats)
                break
        segments.append(best)
        index += len(best[0]) * best[1]
    return segments


def render_path(segments: Sequence[tuple[tuple[str, ...], int]]) -> str:
    parts = []
    for block, repeats in segments:
        if repeats == 1:
            parts.append(" → ".join(block))
        elif len(block) == 1:
            parts.append(f"{block[0]} x{repeats}")
        else:
            parts.append(f"({' → '.join(block)}) x{repeats}")
    return " → ".join(parts)
