"""Work moto repeats with the same answer each time, done once (the answers are exactly moto's own).

- `BaseResponse.call_action` lists its class's methods with `inspect.getmembers` on every request to find the
  action (~0.3 ms a call, more than many actions cost): the list is kept per class until any `Patches` changes
  an attribute (a model adding or replacing an operation), then made again.
- moto creates each account's backend of a service after every reset and asks botocore for that service's
  regions in every partition each time (its `lru_cache` is per backend object, so it never hits): botocore's
  endpoint data does not change while the process runs, so the list is kept per service.
"""

from __future__ import annotations

import threading
from typing import Any

import moto.core.responses
from moto.core.base_backend import AccountSpecificBackend

from asg_optimizer.local import patching
from asg_optimizer.local.patching import Patches

_patches = Patches()
_lock = threading.Lock()
_names: dict[type, list[str]] = {}
_names_generation = [-1]  # the patching generation _names was made in
_regions: dict[str, list[str]] = {}


def _method_names(clazz: type) -> list[str]:
    generation = patching.generation()
    with _lock:
        if _names_generation[0] != generation:
            _names.clear()
            _names_generation[0] = generation
        found = _names.get(clazz)
    if found is None:
        found = _patches.original(moto.core.responses, "method_names_from_class")(clazz)
        with _lock:
            if patching.generation() == generation == _names_generation[0]:  # no patch came in between
                _names[clazz] = found
    return found


def _generate_regions(backend: AccountSpecificBackend[Any], service_name: str) -> list[str]:
    with _lock:
        found = _regions.get(service_name)
    if found is None:
        found = list(_patches.original(AccountSpecificBackend, "_generate_regions")(backend, service_name))
        with _lock:
            _regions[service_name] = found
    return found


def _patch(patches: Patches) -> None:
    patches.replace(moto.core.responses, method_names_from_class=_method_names)
    patches.replace(AccountSpecificBackend, _generate_regions=_generate_regions)


def install() -> None:
    _patches.install(_patch)


def uninstall() -> None:
    _patches.undo()
