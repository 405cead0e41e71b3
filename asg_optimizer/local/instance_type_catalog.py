"""DescribeInstanceTypes, answered once per distinct request and kept for the process.

moto's catalog (~1,400 types) never changes while the embedded AWS runs, yet moto rebuilds and re-serializes the
whole list on every call (seconds each: the largest single cost of a cold swap). The first answer to each request
(region, types asked for, filters) is kept as serialized text and given back as it was. Errors are never kept.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.ec2.responses.instances import InstanceResponse

from asg_optimizer.local.patching import Patches

_patches = Patches()
_kept: dict[tuple[Any, ...], str] = {}
_lock = threading.Lock()


def _describe_instance_types(response: InstanceResponse) -> Any:
    key = (response.region, tuple(sorted((k, tuple(v)) for k, v in response.querystring.items())))
    with _lock:
        kept = _kept.get(key)
    if kept is None:
        describe = _patches.original(InstanceResponse, "describe_instance_types")
        status, _, body = response.serialized(describe(response))
        if status != 200:
            return describe(response)
        kept = body if isinstance(body, str) else body.decode()
        with _lock:
            _kept[key] = kept
    return kept


def install() -> None:
    _patches.install(lambda p: p.replace(InstanceResponse, describe_instance_types=_describe_instance_types))


def uninstall() -> None:
    _patches.undo()
