"""The stack's schedules and event rules, run in the embedded AWS as EventBridge runs them in AWS.

Every scheduled function is invoked through Lambda (so the deployment's wiring, environment included, is what
runs) at its `rate(...)`, optionally sped up for the demo; the first run is at start. Events handed to
`deliver` go to the functions whose rule pattern matches, as EventBridge would route them.

    with Scheduler(aws, speedup=60, inputs={"scan": {"timing": FAST}}) as scheduler:
        ...  # the scanner runs every 5 s, the sweep every 10 s
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asg_optimizer.local.embedded import EmbeddedAws
from stack.description import DEFAULT_PREFIX, STACK, Schedule, Stack

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int:
    """Seconds between runs of an EventBridge `rate(...)` expression; cron is not run locally."""
    match = _RATE.fullmatch(expression.strip())
    if not match or int(match.group(1)) < 1 or (int(match.group(1)) == 1) != (not match.group(2).endswith("s")):
        raise ValueError(f"schedule {expression!r}: only 'rate(N unit)' runs locally (e.g. 'rate(5 minutes)')")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge's basic matching: every key in the pattern must be in the event; a list means "one of",
    a nested object matches nested fields."""
    for key, wanted in pattern.items():
        if key not in event:
            return False
        if isinstance(wanted, Mapping):
            if not isinstance(event[key], Mapping) or not matches(wanted, event[key]):
                return False
        elif event[key] not in wanted:
            return False
    return True


def scheduled_event(schedule: Schedule, region: str) -> dict[str, Any]:
    """What EventBridge sends a target that has no fixed input."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
        "resources": [f"arn:aws:events:{region}:123456789012:rule/{schedule.key}"], "detail": {},
    }


@dataclass(frozen=True)
class Run:
    source: str  # schedule or rule key
    function: str
    result: dict[str, Any]
    errored: bool


class Scheduler:
    """Runs the stack's schedules on a background thread; `run(key)` and `deliver(event)` also work unstarted."""

    def __init__(self, aws: EmbeddedAws, *, speedup: float = 1.0, inputs: Mapping[str, dict[str, Any]] | None = None,
                 stack: Stack = STACK, prefix: str = DEFAULT_PREFIX) -> None:
        self.aws, self.stack, self.prefix = aws, stack, prefix
        self.inputs = dict(inputs or {})  # schedule key -> fixed input (a target's Input in EventBridge)
        self.intervals = {s.key: rate_seconds(s.expression) / speedup for s in stack.schedules}
        self.runs: list[Run] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _invoke(self, source: str, function_key: str, event: dict[str, Any]) -> Run:
        name = self.stack.function(function_key).name(self.prefix)
        response = self.aws.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event))
        run = Run(source, function_key, json.loads(response["Payload"].read()), "FunctionError" in response)
        with self._lock:
            self.runs.append(run)
        return run

    def run(self, schedule_key: str) -> Run:
        """Invoke one schedule's function now."""
        schedule = next(s for s in self.stack.schedules if s.key == schedule_key)
        event = self.inputs.get(schedule_key) or scheduled_event(schedule, self.aws.region)
        return self._invoke(schedule_key, schedule.function, event)

    def scan(self) -> list[str]:
        """Run the scanner's schedule once; the ARNs of the executions it started (for the demo and tests)."""
        run = self.run(next(s.key for s in self.stack.schedules if s.function == "scanner"))
        if run.errored:
            raise RuntimeError(f"scanner failed: {run.result.get('errorType')}: {run.result.get('errorMessage')}")
        prefix = self.aws.deployment.replace_arn.replace(":stateMachine:", ":execution:")
        return [f"{prefix}:{name}" for name in run.result["started"]]

    def deliver(self, event: dict[str, Any]) -> list[Run]:
        """Route an event to every function whose rule matches it."""
        return [self._invoke(rule.key, rule.function, event) for rule in self.stack.rules
                if matches(rule.pattern, event)]

    def runs_of(self, source: str) -> list[Run]:
        with self._lock:
            return [r for r in self.runs if r.source == source]

    def _loop(self) -> None:
        due = dict.fromkeys(self.intervals, time.monotonic())
        while not self._stop.is_set():
            now = time.monotonic()
            for key in sorted(due):
                if due[key] <= now and not self._stop.is_set():
                    self.run(key)
                    due[key] = now + self.intervals[key]
            self._stop.wait(max(0.0, min(due.values()) - time.monotonic()))

    def start(self) -> Scheduler:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="local-schedules", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Scheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
