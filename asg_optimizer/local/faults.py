"""Fault injection for the embedded AWS: make the Nth call of an AWS operation made by the task functions fail with
an error code, or let it succeed and then crash the Lambda as if it died before reporting.

Hooks botocore's `before-call` / `after-call` events on boto3's default session, which only the task functions use
(the harness and `EmbeddedAws.client` use sessions of their own), so the tests' own calls are never faulted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import boto3

from tasks.aws import reset_clients

INJECTABLE_CODES = ("Throttling", "RequestLimitExceeded", "ResourceContention", "InsufficientInstanceCapacity",
                    "InternalError", "ServiceUnavailable")


class SimulatedCrash(Exception):
    """The Lambda died after its AWS call took effect (timeout, OOM): Step Functions sees `Lambda.Unknown`."""

    error_type = "Lambda.Unknown"


@dataclass
class Fault:
    service: str  # botocore service name: "autoscaling", "ec2", "stepfunctions"
    operation: str  # API operation: "AttachInstances"
    code: str | None  # error code to answer with; None for a crash after the call
    nth: int = 1  # the first call affected, counting from 1
    times: int = 1  # how many calls from the nth on
    calls: int = 0
    fired: int = 0

    def matches(self, model: Any) -> bool:
        return model.service_model.service_name == self.service and model.name == self.operation

    def due(self) -> bool:
        self.calls += 1
        hit = self.nth <= self.calls < self.nth + self.times
        self.fired += hit
        return hit


class _HttpError:
    status_code = 400
    headers: dict[str, str] = {}  # noqa: RUF012 - read-only stand-in for botocore's AWSResponse


@dataclass
class FaultInjector:
    """`with FaultInjector() as faults: faults.fail("ec2", "RunInstances", "Throttling")`."""

    faults: list[Fault] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, service: str, operation: str, code: str, *, nth: int = 1, times: int = 1) -> Fault:
        if code not in INJECTABLE_CODES:
            raise ValueError(f"unknown fault code {code!r}; one of {', '.join(INJECTABLE_CODES)}")
        fault = Fault(service, operation, code, nth, times)
        self.faults.append(fault)
        return fault

    def crash_after(self, service: str, operation: str, *, nth: int = 1) -> Fault:
        fault = Fault(service, operation, None, nth, 1)
        self.faults.append(fault)
        return fault

    def _before_call(self, model: Any, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        with self._lock:
            for fault in self.faults:
                if fault.code and fault.matches(model) and fault.due():
                    self.log.append(f"{model.name}: {fault.code} (call {fault.calls})")
                    error = {"Code": fault.code, "Message": f"injected {fault.code} on call {fault.calls}"}
                    return _HttpError(), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    def _after_call(self, model: Any, http_response: Any, **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        with self._lock:
            due = [f for f in self.faults if f.code is None and f.matches(model) and f.due()]
            if due:
                self.log.append(f"{model.name}: crash after call {due[0].calls}")
        if due:
            raise SimulatedCrash(f"Lambda crashed after {model.name} succeeded")

    def __enter__(self) -> FaultInjector:
        events = boto3._get_default_session().events
        events.register("before-call", self._before_call, unique_id="asg-optimizer-faults-before")
        events.register("after-call", self._after_call, unique_id="asg-optimizer-faults-after")
        reset_clients()  # clients copy the session's handlers when created
        return self

    def __exit__(self, *exc: object) -> None:
        events = boto3._get_default_session().events
        events.unregister("before-call", unique_id="asg-optimizer-faults-before")
        events.unregister("after-call", unique_id="asg-optimizer-faults-after")
        reset_clients()
