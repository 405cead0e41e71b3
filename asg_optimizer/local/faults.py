"""Fault injection for the embedded AWS: make the Nth call of an AWS operation made by the task functions fail with
an error code, or let it succeed and then crash the Lambda as if it died before reporting.

Hooks botocore's `before-call` / `after-call` events on boto3's default session, which only the task functions use
(the harness and `EmbeddedAws.client` use sessions of their own), so the tests' own calls are never faulted.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3

from asg_optimizer.local.interleaving import running_invocation
from tasks.aws.clients import reset_clients

# The interpreter's own Lambda invocations share the default session; the task functions never call Lambda.
SPARED_SERVICES = frozenset({"lambda"})
INJECTABLE_CODES = ("Throttling", "RequestLimitExceeded", "ResourceContention", "InsufficientInstanceCapacity",
                    "InternalError", "ServiceUnavailable")


class SimulatedCrash(Exception):
    """The Lambda died after its AWS call took effect: Step Functions sees `Lambda.Unknown` (an out-of-memory
    or an older runtime's timeout), `Sandbox.Timedout` (the function's timeout on current runtimes) or
    `Lambda.ClientExecutionTimeoutException` (the invoke itself timed out), as `error_type` says."""

    def __init__(self, message: str, error_type: str = "Lambda.Unknown") -> None:
        super().__init__(message)
        self.error_type = error_type


CRASH_TYPES = ("Lambda.Unknown", "Sandbox.Timedout", "Lambda.ClientExecutionTimeoutException")


@dataclass
class Fault:
    service: str  # botocore service name: "autoscaling", "ec2", "stepfunctions"
    operation: str  # API operation: "AttachInstances"
    code: str | None  # error code to answer with; None for a crash after the call
    nth: int = 1  # the first call affected, counting from 1
    times: int = 1  # how many calls from the nth on
    crash_type: str = "Lambda.Unknown"  # the error Step Functions sees for a crash after the call
    calls: int = 0
    fired: int = 0

    def matches(self, model: Any) -> bool:
        return model.service_model.service_name == self.service and model.name == self.operation

    def due(self) -> bool:
        self.calls += 1
        hit = self.nth <= self.calls < self.nth + self.times
        self.fired += hit
        return hit


@dataclass(frozen=True)
class Injected:
    """Where one fault went: the function and execution whose handler made the call, the operation, and what
    was injected (an error code, or `crash`), so a soak's violation can be traced to the fault path behind it."""

    function: str | None
    execution: str | None
    operation: str
    what: str


class _HttpError:
    status_code = 400
    headers: dict[str, str] = {}  # noqa: RUF012 - read-only stand-in for botocore's AWSResponse


@dataclass
class RandomFaults:
    """Fail each call with probability `rate` (a code drawn from `codes`), or crash after it with `crash_rate`."""

    rng: random.Random
    rate: float
    crash_rate: float
    codes: tuple[str, ...]
    operations: frozenset[str]  # operation names; empty means every operation

    def applies(self, model: Any) -> bool:
        return not self.operations or model.name in self.operations


@dataclass
class FaultInjector:
    """`with FaultInjector() as faults: faults.fail("ec2", "RunInstances", "Throttling")`."""

    faults: list[Fault] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    trail: list[Injected] = field(default_factory=list)  # the same faults, with the handler that met each
    chaos: list[RandomFaults] = field(default_factory=list)
    paused: bool = False  # while True, nothing is injected (a harness step that is not under test)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def at_random(self, seed: int, *, rate: float, crash_rate: float = 0.0,
                  codes: tuple[str, ...] = ("Throttling", "ResourceContention", "InternalError"),
                  operations: tuple[str, ...] = ()) -> RandomFaults:
        """Seeded random faults on every matching call (the same seed and call order give the same faults)."""
        unknown = [c for c in codes if c not in INJECTABLE_CODES]
        if unknown:
            raise ValueError(f"unknown fault code {unknown[0]!r}; one of {', '.join(INJECTABLE_CODES)}")
        rule = RandomFaults(random.Random(seed), rate, crash_rate, codes, frozenset(operations))
        self.chaos.append(rule)
        return rule

    def fail(self, service: str, operation: str, code: str, *, nth: int = 1, times: int = 1) -> Fault:
        if code not in INJECTABLE_CODES:
            raise ValueError(f"unknown fault code {code!r}; one of {', '.join(INJECTABLE_CODES)}")
        fault = Fault(service, operation, code, nth, times)
        self.faults.append(fault)
        return fault

    def crash_after(self, service: str, operation: str, *, nth: int = 1, error_type: str = "Lambda.Unknown") -> Fault:
        if error_type not in CRASH_TYPES:
            raise ValueError(f"unknown crash type {error_type!r}; one of {', '.join(CRASH_TYPES)}")
        fault = Fault(service, operation, None, nth, 1, crash_type=error_type)
        self.faults.append(fault)
        return fault

    def _before_call(self, model: Any, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        if self.paused or model.service_model.service_name in SPARED_SERVICES:
            return None
        with self._lock:
            code = next((f.code for f in self.faults if f.code and f.matches(model) and f.due()), None)
            for rule in self.chaos:
                if code is None and rule.applies(model) and rule.rng.random() < rule.rate:
                    code = rule.rng.choice(rule.codes)
            if code is None:
                return None
            self.log.append(f"{model.name}: {code}")
            self._trace(model.name, code)
        error = {"Code": code, "Message": f"injected {code}"}
        return _HttpError(), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    def _after_call(self, model: Any, http_response: Any, **_: Any) -> None:
        if self.paused or http_response.status_code >= 300 or model.service_model.service_name in SPARED_SERVICES:
            return
        with self._lock:
            due = [f for f in self.faults if f.code is None and f.matches(model) and f.due()]
            if due:
                self.log.append(f"{model.name}: crash after call {due[0].calls}")
            elif any(r.applies(model) and r.rng.random() < r.crash_rate for r in self.chaos):
                due = [Fault(model.service_model.service_name, model.name, None)]
                self.log.append(f"{model.name}: crash after call")
            if due:
                self._trace(model.name, "crash")
        if due:
            raise SimulatedCrash(f"Lambda crashed after {model.name} succeeded", due[0].crash_type)

    def _trace(self, operation: str, what: str) -> None:
        current = running_invocation()
        self.trail.append(Injected(current.function_name if current else None, current.execution if current else None,
                                   operation, what))

    def __enter__(self) -> FaultInjector:
        events = boto3._get_default_session().events
        events.register("before-call", self._before_call, unique_id="asg-optimizer-faults-before")
        events.register("after-call", self._after_call, unique_id="asg-optimizer-faults-after")
        reset_clients()  # clients copy the session's handlers when created
        return self

    def stop(self) -> None:
        """Inject nothing more (the hooks stay registered until the block ends)."""
        with self._lock:
            self.faults.clear()
            self.chaos.clear()

    def __exit__(self, *exc: object) -> None:
        events = boto3._get_default_session().events
        events.unregister("before-call", unique_id="asg-optimizer-faults-before")
        events.unregister("after-call", unique_id="asg-optimizer-faults-after")
        reset_clients()
