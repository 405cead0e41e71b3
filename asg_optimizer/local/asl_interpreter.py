"""What the embedded AWS changes in moto's ASL interpreter, for speed and for one race moto loses.

- Lambda clients: the interpreter makes a new boto3 Lambda client for every Task state (`boto_client_for`), which
  costs more than the handler it invokes; one per region is kept while the embedded AWS runs. Only Lambda's: the
  fault injector spares Lambda, so a kept client misses no fault hook. Other services get moto's fresh client.
- Parsed definitions: moto parses a definition (ANTLR, ~0.1 s) at CreateStateMachine and again at every
  StartExecution. The parse is a pure function of the text and the tree it returns is never changed (every
  execution's state lives in its own `Environment`), so each text is parsed once per process and the tree is
  shared by concurrent executions.
- StopExecution right after StartExecution: moto builds the execution's environment in the worker thread, and a
  stop that comes first fails (`'NoneType' object has no attribute 'set_stop'`, a 500), or, a moment later, is
  ignored (the program is not running yet). AWS aborts the execution. The environment is built in StartExecution
  itself, and a stop waits (bounded) until the program runs, then aborts it.
- StopExecution of an execution waiting for a task token (`.waitForTaskToken`, e.g. a rollout at a checkpoint):
  moto marks the program stopped but leaves the task waiting for its token (up to its TimeoutSeconds), so the
  execution stays RUNNING. AWS aborts it at once. The stop wakes the execution's waiting callbacks, so the
  program ends as stopped (ABORTED, no Catch runs); the woken task's failure no longer turns a stopped program
  into a failed one (moto's `set_error` overwrote the stop: FAILED, where AWS says ABORTED).
- Retry back-off: a Retrier sleeps its interval (IntervalSeconds x BackoffRate^n, capped, jittered) in real
  seconds. The embedded AWS may scale that sleep (`EmbeddedAws(retry_scale=...)`; tests use a small one) so a
  throttled step does not cost the suite 2 + 4 + 8 s; the ASL, the attempts and their order stay as deployed.
- Wait states: a Wait (Seconds or SecondsPath: the boot and group polls, a grace period, a rollout's bake) lasts
  its seconds times `EmbeddedAws(wait_scale=...)` (1.0: as in AWS). The definitions and the timing in the input
  stay as deployed, so a poll interval below the 2 s minimum is refused as it would be in AWS; only the sleep is
  shorter. A stop still ends the wait at once.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
import weakref
from datetime import UTC, datetime
from typing import Any

from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils  # noqa: F401
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from asg_optimizer.local import sfn_integration
from asg_optimizer.local.patching import Patches

_original_client_for = boto_client.boto_client_for
_original_parse = AmazonStateLanguageParser.parse
_original_environment = ExecutionWorker._get_evaluation_environment
_original_start = ExecutionWorker.start
_original_stop = ExecutionWorker.stop
_original_wait = WaitFunction._wait_interval
_original_set_error = Environment.set_error
STOP_WAIT_SECONDS = 10.0  # the longest a stop waits for the worker thread to reach the first state
_kept: dict[tuple[str, bool], Any] = {}
_lock = threading.Lock()
_started: weakref.WeakSet[ExecutionWorker] = weakref.WeakSet()  # stopped by uninstall if still running
_patches = Patches()


class _ScaledSleep:
    """Stands in for the `time` module in moto's retrier: its back-off sleeps last `scale` times as long."""

    scale = 1.0

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)


_retry_time = _ScaledSleep()


def set_retry_scale(scale: float) -> None:
    """How long a Retrier's back-off really sleeps, as a fraction of its interval (1.0: as in AWS)."""
    if scale <= 0:
        raise ValueError(f"retry scale must be positive, got {scale}")
    _retry_time.scale = scale


class _WaitScale:
    scale = 1.0


_wait = _WaitScale()


def set_wait_scale(scale: float) -> None:
    """How long a Wait state really sleeps, as a fraction of its seconds (1.0: as in AWS)."""
    if scale <= 0:
        raise ValueError(f"wait scale must be positive, got {scale}")
    _wait.scale = scale


def _wait_interval(function: WaitFunction, env: Any, wait_seconds: int) -> None:
    """moto's wait (ended early by a stop, resumed after any other wake-up) for `wait_seconds` x the scale."""
    if _wait.scale == 1.0:
        _original_wait(function, env, wait_seconds)
        return
    deadline = time.monotonic() + wait_seconds * _wait.scale
    while (left := deadline - time.monotonic()) > 0:
        if env.program_state_event.wait(left) and env.is_running():
            time.sleep(min(left, 0.01))  # woken for something else, the event still set: no busy loop
        if not env.is_running():
            return


def _client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    if service != "lambda":  # moto ignores state_credentials too
        return _original_client_for(region=region, service=service, state_credentials=state_credentials)
    key = (region, boto_client.botocore_stubber.enabled)  # in-process, or through `local serve`'s port
    with _lock:
        if key not in _kept:
            _kept[key] = _original_client_for(region=region, service=service)
        return _kept[key]


@functools.lru_cache(maxsize=64)
def _parse(definition: str) -> Any:
    return _original_parse(definition)


def _environment(worker: ExecutionWorker) -> Any:
    """The worker's one environment: made by `start` (below), handed to the worker thread when it asks."""
    made = worker.__dict__.get("_embedded_env")
    if made is None:
        made = worker.__dict__["_embedded_env"] = _original_environment(worker)
    return made


def _start(worker: ExecutionWorker) -> None:
    worker.env = _environment(worker)  # before the thread: StopExecution may come before its first line runs
    with _lock:
        _started.add(worker)
    _original_start(worker)


def _stop(worker: ExecutionWorker, stop_date: Any, error: str | None, cause: str | None) -> None:
    env = _environment(worker)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while env.program_state() is None and time.monotonic() < deadline:  # the worker thread has not started it
        time.sleep(0.001)
    _original_stop(worker, stop_date=stop_date, error=error, cause=cause)
    for endpoint in list(env.callback_pool_manager._pool.values()):  # a task waiting for its token wakes
        endpoint.interrupt_all()
    sfn_integration.parent_stopped(worker._evaluation_details.execution_details.arn, stop_date)  # as in AWS


def _set_error(env: Environment, error: Any) -> None:
    if isinstance(env.program_state(), ProgramStopped):  # stopped first: it stays ABORTED, as in AWS
        return
    _original_set_error(env, error)


def install() -> None:
    """Patch the interpreter (idempotent). Every module that imported `boto_client_for` is repointed (the Lambda
    task's `lambda_eval_utils` is imported above so that it is among them)."""
    _patches.install(_patch)


def _patch(patches: Patches) -> None:
    for name, module in sys.modules.copy().items():  # copied in one step: other threads may be importing
        ours = getattr(module, "boto_client_for", None) is _original_client_for
        if name.startswith("moto.stepfunctions") and ours:
            patches.replace(module, boto_client_for=_client_for)
    patches.replace(AmazonStateLanguageParser, parse=staticmethod(_parse))
    patches.replace(ExecutionWorker, _get_evaluation_environment=_environment, start=_start, stop=_stop)
    patches.replace(Environment, set_error=_set_error)
    patches.replace(retrier_decl, time=_retry_time)
    patches.replace(WaitFunction, _wait_interval=_wait_interval)


def uninstall() -> None:
    _stop_running()
    _patches.undo()
    with _lock:
        _kept.clear()
    _retry_time.scale = 1.0
    _wait.scale = 1.0


def _stop_running() -> None:
    """The executions end with the embedded AWS: one left in a Wait would wake inside the next one (another test
    in this process) and call its Lambdas there."""
    with _lock:
        workers = list(_started)
        _started.clear()
    for worker in workers:
        env = worker.__dict__.get("_embedded_env")
        if env is not None and env.is_running():
            _stop(worker, stop_date=datetime.now(UTC), error=None, cause="the embedded AWS stopped")
