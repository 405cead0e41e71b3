"""boto3 sessions that share one botocore loader per process.

A fresh `boto3.session.Session` re-reads botocore's JSON service models (~0.2 s for the first client of a
service); sessions made here share one loader, whose cache keeps every model after its first use, so a session
and its first client cost ~10 ms. The embedded AWS, the invariant checker, the demo and the CLI make their
sessions here; Lambda handlers keep boto3's default session (one per container, as in AWS).

Clients of these sessions also share one client class per service: botocore builds a class with a method per
operation for every client it makes (~5 ms of ~9 ms for an EC2 client, ~60 % of making any client), the same
class each time for sessions set up alike. The class holds only those methods (a client's endpoint, credentials,
config and event handlers are its own), and it is shared only where the handlers that shape it
(`creating-client-class`) are the ones every session here registers.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.client
import botocore.loaders
import botocore.session

_lock = threading.Lock()
_shared: list[botocore.loaders.Loader] = []
_classes: dict[tuple[Any, ...], type] = {}
_build_class = botocore.client.ClientCreator._create_client_class


def _shaping_handlers(creator: Any, service_model: Any) -> tuple[str, ...] | None:
    """What the handlers of `creating-client-class` for this service are, by name (a session's own copies of
    boto3's lazy handlers are alike); None when botocore no longer lets us see them (then nothing is shared)."""
    try:
        event = f"creating-client-class.{service_model.service_id.hyphenize()}"
        handlers = creator._event_emitter._emitter._handlers.prefix_search(event)
    except AttributeError:
        return None
    return tuple(f"{getattr(h, '__module__', '')}.{getattr(h, '__qualname__', type(h).__qualname__)}"
                 for h in handlers)


def _shared_client_class(creator: Any, service_name: str, service_model: Any) -> type:
    if not _shared or creator._loader is not _shared[0]:  # a session not made here: botocore's own way
        return _build_class(creator, service_name, service_model)
    shaping = _shaping_handlers(creator, service_model)
    if shaping is None:
        return _build_class(creator, service_name, service_model)
    key = (service_name, service_model.api_version, shaping)
    with _lock:
        found = _classes.get(key)
    if found is None:
        found = _build_class(creator, service_name, service_model)
        with _lock:
            found = _classes.setdefault(key, found)
    return found


botocore.client.ClientCreator._create_client_class = _shared_client_class


def loader() -> botocore.loaders.Loader:
    """The process's one botocore loader (thread-safe to share: it only caches what it reads)."""
    with _lock:
        if not _shared:
            _shared.append(botocore.loaders.create_loader())
        return _shared[0]


def session(**kwargs: Any) -> boto3.session.Session:
    """A boto3 session of its own (credentials, region, event handlers) on the shared loader."""
    core = botocore.session.Session()
    shared = loader()
    core.register_component("data_loader", shared)
    made = boto3.session.Session(botocore_session=core, **kwargs)
    with _lock:  # each boto3 session appends its own data path to the loader: keep one of each
        paths = shared.search_paths
        paths[:] = list(dict.fromkeys(paths))
    return made
