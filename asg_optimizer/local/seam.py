"""The one seam into moto: run a Lambda function's real `Handler` in-process instead of in Docker.

moto calls `LambdaFunction._invoke_lambda(self, event) -> (payload_json, errored, logs)`; we replace only that.
`check_seam()` fails loudly if moto changes it, so an upgrade cannot silently fall back to Docker.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from moto.awslambda.models import LambdaFunction, lambda_backends

from asg_optimizer import sessions
from asg_optimizer.local import interleaving
from asg_optimizer.local.patching import Patches
from tasks.aws.clients import _CONFIG, _PRICING_CONFIG, PRICING_REGION, clients_from

SEAM_PARAMETERS = ["self", "event"]
_original = LambdaFunction._invoke_lambda
_patches = Patches()

# Observers see every invocation: (function name, event, result or error payload, errored).
Observer = Callable[[str, dict[str, Any], dict[str, Any], bool], None]
observers: list[Observer] = []


class SeamChanged(RuntimeError):
    pass


class RegionRoom:
    """Handlers of one region at a time. The functions share this process's environment, and two regions' copies
    of a function differ in it (AWS_REGION, their state machines' ARNs): concurrent handlers of one region are
    fine (the same values), of two regions they would read each other's. A region waiting gets its turn before
    more handlers of the one inside enter, so none waits for ever."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._inside: str | None = None
        self._count = 0
        self._waiting: dict[str, int] = {}

    def _may_enter(self, region: str) -> bool:
        if self._inside is None:
            return True
        return self._inside == region and not any(n for r, n in self._waiting.items() if r != region)

    @contextmanager
    def of(self, region: str) -> Iterator[None]:
        with self._turn:
            self._waiting[region] = self._waiting.get(region, 0) + 1
            while not self._may_enter(region):
                self._turn.wait()
            self._waiting[region] -= 1
            self._inside, self._count = region, self._count + 1
        try:
            yield
        finally:
            with self._turn:
                self._count -= 1
                if self._count == 0:
                    self._inside = None
                self._turn.notify_all()


_room = RegionRoom()


class _InFlight:
    """The handlers running now, so uninstall can wait for them: a handler still running when its embedded AWS
    stops would finish its AWS calls in the next one (the same process, the same patched moto)."""

    def __init__(self) -> None:
        self._idle = threading.Condition()
        self._count = 0

    @contextmanager
    def one(self) -> Iterator[None]:
        with self._idle:
            self._count += 1
        try:
            yield
        finally:
            with self._idle:
                self._count -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no handler runs; False if some still ran after `timeout` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout=timeout)


_in_flight = _InFlight()
DRAIN_SECONDS = 30.0  # the longest uninstall waits for running handlers (the suite's handlers take well under it)


class StaleFunction(RuntimeError):
    """An invocation from an embedded AWS that has stopped (a stopped execution's thread woke up later)."""

    error_type = "Lambda.ServiceException"


def _is_current(function: LambdaFunction) -> bool:
    """Whether this function object is the one the running moto knows: after a stop and a new start, an old
    execution's thread still holds the old object, whose name the new deployment reuses."""
    try:
        found = lambda_backends[function.account_id][str(function.region)].get_function(function.function_name)
    except Exception:  # not found, or moto reset: not ours to run
        return False
    return found is function
_regional: dict[tuple[str, str], Any] = {}  # (region, service) -> client, for functions outside home_region
_regional_lock = threading.Lock()
home_region: list[str] = []  # the region whose functions use the handlers' own clients (set by install)


def _regional_client(region: str, service: str) -> Any:
    """A handler's client in its function's region (Lambda gives each region's copy its own AWS_REGION); the
    Price List API stays in us-east-1, as tasks.aws.clients makes it."""
    key = (region, service)
    with _regional_lock:
        if key not in _regional:
            config = _PRICING_CONFIG if service == "pricing" else _CONFIG
            _regional[key] = sessions.session(region_name=PRICING_REGION if service == "pricing" else region
                                              ).client(service, config=config)
        return _regional[key]


def check_seam() -> None:
    """Raise SeamChanged unless moto's `_invoke_lambda` still has the shape we replace."""
    parameters = list(inspect.signature(_original).parameters)
    if parameters != SEAM_PARAMETERS:
        raise SeamChanged(
            f"moto's LambdaFunction._invoke_lambda now takes {parameters}, expected {SEAM_PARAMETERS}: "
            "update asg_optimizer/local/seam.py before upgrading moto"
        )
    source = inspect.getsource(LambdaFunction.invoke)
    if "self._invoke_lambda(event=" not in source:
        raise SeamChanged("moto's LambdaFunction.invoke no longer calls self._invoke_lambda(event=...)")


@dataclass
class FakeContext:
    """What handlers and Powertools read from the Lambda context."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    function_version: str = "$LATEST"
    aws_request_id: str = ""
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def resolve_handler(handler: str) -> Callable[[dict[str, Any], Any], Any]:
    """`tasks.validate.handler` -> the callable; the same resolution AWS Lambda's Python runtime does."""
    module_name, _, attribute = handler.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def _invoke_in_process(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
    payload = event if isinstance(event, dict) else json.loads(event or "{}")
    context = FakeContext(
        function_name=self.function_name,
        invoked_function_arn=self.function_arn,
        memory_limit_in_mb=int(self.memory_size),
        aws_request_id=str(uuid.uuid4()),
        log_group_name=self.logs_group_name,
    )
    # Handlers run concurrently, as Lambdas do: each AWS call they make is atomic, the handler is not
    # (asg_optimizer.local.interleaving).
    execution = payload.get("execution_name") if isinstance(payload, dict) else None
    region = str(self.region)
    elsewhere = bool(home_region) and region != home_region[0]
    if not _is_current(self):  # never run a handler of a stopped embedded AWS against the next one's state
        error = StaleFunction(f"function {self.function_name} belongs to an embedded AWS that has stopped")
        return json.dumps({"errorMessage": str(error), "errorType": error.error_type}), True, ""
    with _in_flight.one(), _room.of(region), \
            interleaving.invocation(self.function_name, str(execution) if execution else None):
        # The functions share one process environment; each sets the variables it was deployed with, and its
        # region (one region's handlers at a time: RegionRoom).
        os.environ.update({k: str(v) for k, v in (self.environment_vars or {}).items()})
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region
        try:
            if elsewhere:  # another region's copy: its clients in its region, not the home region's cached ones
                with clients_from(lambda service: _regional_client(region, service)):
                    result = resolve_handler(str(self.handler))(payload, context)
            else:
                result = resolve_handler(str(self.handler))(payload, context)
            errored = False
        except Exception as error:  # a handler error is the function's result, as in Lambda
            result = {
                "errorMessage": str(error),
                # An exception may name the error Step Functions sees (a simulated crash is `Lambda.Unknown`).
                "errorType": getattr(error, "error_type", type(error).__name__),
                "stackTrace": traceback.format_tb(error.__traceback__),
            }
            errored = True
        for observe in list(observers):
            observe(self.function_name, payload, result, errored)
    return json.dumps(result, default=str), errored, ""


def install() -> None:
    check_seam()
    interleaving.install()
    home_region[:] = [os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"]
    _patches.install(lambda p: p.replace(LambdaFunction, _invoke_lambda=_invoke_in_process))


def uninstall(drain_seconds: float = DRAIN_SECONDS) -> None:
    """`drain_seconds`: how long handlers still running may finish in this moto (0 where the process ends)."""
    _in_flight.drain(drain_seconds)  # the executions were stopped: what still runs finishes in this moto
    _patches.undo()
    home_region.clear()
    with _regional_lock:
        _regional.clear()
    interleaving.uninstall()
