"""moto's ASL interpreter makes a new boto3 Lambda client for every Task state it runs (`boto_client_for`), which
costs more than the handler it invokes. The embedded AWS keeps one per region while it runs.

Only Lambda clients are kept: the fault injector spares Lambda, so a kept client sees no fault hooks it would
have missed; any other service the interpreter calls still gets a fresh client, as moto makes it.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils  # noqa: F401
from moto.stepfunctions.parser.asl.utils import boto_client

_original = boto_client.boto_client_for
_kept: dict[tuple[str, bool], Any] = {}
_lock = threading.Lock()
_patched: list[Any] = []  # modules whose `boto_client_for` we replaced


def _client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    if service != "lambda":  # moto ignores state_credentials too
        return _original(region=region, service=service, state_credentials=state_credentials)
    key = (region, boto_client.botocore_stubber.enabled)  # in-process, or through `local serve`'s port
    with _lock:
        if key not in _kept:
            _kept[key] = _original(region=region, service=service)
        return _kept[key]


def install() -> None:
    """Point every interpreter module that imported `boto_client_for` at the keeping one (the Lambda task's
    `lambda_eval_utils` is imported above so that it is among them)."""
    with _lock:
        if _patched:
            return
        for name, module in list(sys.modules.items()):
            if name.startswith("moto.stepfunctions") and getattr(module, "boto_client_for", None) is _original:
                module.boto_client_for = _client_for  # type: ignore[attr-defined]
                _patched.append(module)


def uninstall() -> None:
    with _lock:
        for module in _patched:
            module.boto_client_for = _original  # type: ignore[attr-defined]
        _patched.clear()
        _kept.clear()
