"""boto3 sessions that share one botocore loader per process.

A fresh `boto3.session.Session` re-reads botocore's JSON service models (~0.2 s for the first client of a
service); sessions made here share one loader, whose cache keeps every model after its first use, so a session
and its first client cost ~10 ms. The embedded AWS, the invariant checker, the demo and the CLI make their
sessions here; Lambda handlers keep boto3's default session (one per container, as in AWS).
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.loaders
import botocore.session

_lock = threading.Lock()
_shared: list[botocore.loaders.Loader] = []


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
