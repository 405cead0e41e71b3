"""Where the functions' CloudWatch metrics go in the embedded AWS: a list (and optionally a file), not stdout.

In Lambda, Powertools prints each flush as one Embedded Metric Format line to the function's log, and CloudWatch
turns it into metrics. In-process those prints would land on the operator's stdout, between the CLI's own output
(`demo --json` would not be one JSON object). The sink keeps each flush as the EMF document CloudWatch would
receive; `ASG_OPTIMIZER_METRICS_FILE` also appends them, one JSON line each, to that file.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from aws_lambda_powertools.shared import constants

from asg_optimizer.local.patching import Patches

METRICS_FILE = "ASG_OPTIMIZER_METRICS_FILE"
documents: list[dict[str, Any]] = []
_lock = threading.Lock()
_patches = Patches()


def flush_into_sink(provider: AmazonCloudWatchEMFProvider, raise_on_empty_metrics: bool = False) -> None:
    """Powertools' flush, with the EMF document kept instead of printed (same empty-set rule)."""
    if not provider.metric_set:
        if raise_on_empty_metrics:  # Powertools' own error
            _patches.original(AmazonCloudWatchEMFProvider, "flush_metrics")(provider, raise_on_empty_metrics)
        return
    if is_metrics_disabled():
        return
    if provider.namespace is None:
        # In Lambda the function's environment is set before its module makes its Metrics; in-process a test may
        # have imported the module first (the namespace read then was None): read it now, as Lambda would have.
        provider.namespace = os.environ.get(constants.METRICS_NAMESPACE_ENV)
    document = provider.serialize_metric_set()
    with _lock:
        documents.append(dict(document))
        path = os.environ.get(METRICS_FILE)
        if path:
            with open(path, "a", encoding="utf-8") as sink:
                sink.write(json.dumps(document, separators=(",", ":")) + "\n")
    provider.clear_metrics()


def metric_values(name: str) -> list[tuple[dict[str, Any], list[float]]]:
    """(the document's dimensions and metadata, the values) of every flush that carried metric `name`."""
    with _lock:
        found = [d for d in documents if name in d]
    return [({k: v for k, v in d.items() if k != "_aws" and not isinstance(v, list)}, list(d[name])) for d in found]


def install() -> None:
    _patches.install(lambda p: p.replace(AmazonCloudWatchEMFProvider, flush_metrics=flush_into_sink))


def uninstall() -> None:
    _patches.undo()
    with _lock:
        documents.clear()
