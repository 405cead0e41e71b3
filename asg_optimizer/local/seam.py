"""The one seam into moto: run a Lambda function's real `Handler` in-process instead of in Docker.

moto calls `LambdaFunction._invoke_lambda(self, event) -> (payload_json, errored, logs)`; we replace only that.
`check_seam()` fails loudly if moto changes it, so an upgrade cannot silently fall back to Docker.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.awslambda.models import LambdaFunction

from asg_optimizer.local import interleaving
from asg_optimizer.local.patching import Patches

SEAM_PARAMETERS = ["self", "event"]
_original = LambdaFunction._invoke_lambda
_patches = Patches()

# Observers see every invocation: (function name, event, result or error payload, errored).
Observer = Callable[[str, dict[str, Any], dict[str, Any], bool], None]
observers: list[Observer] = []


class SeamChanged(RuntimeError):
    pass


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
    with interleaving.invocation(self.function_name, str(execution) if execution else None):
        # The functions share one process environment; each sets the variables it was deployed with.
        os.environ.update({k: str(v) for k, v in (self.environment_vars or {}).items()})
        try:
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
    _patches.install(lambda p: p.replace(LambdaFunction, _invoke_lambda=_invoke_in_process))


def uninstall() -> None:
    _patches.undo()
    interleaving.uninstall()
