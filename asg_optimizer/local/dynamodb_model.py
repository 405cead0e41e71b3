"""DynamoDB's partial batch reads, which moto lacks: BatchGetItem may answer only part of a request.

AWS documents that BatchGetItem returns a partial result, the rest in UnprocessedKeys, when the response would pass
16 MB, the table's throughput is exceeded, more than 1 MB per partition is asked or an internal failure occurs, and
that the caller must retry those keys. moto returns UnprocessedKeys only past 16 MB, so a reader's retry loop would
never run. Modeled by call count, not load (deterministic): with `unprocessed_calls = N`, each of the next N
BatchGetItem calls of more than one key processes the first half of each table's keys (rounded up) and returns the
rest in UnprocessedKeys. A call of one key is answered whole (AWS fails such a call outright, with
ProvisionedThroughputExceededException, rather than answer none of it). 0 (the default) turns the model off.
moto's own checks stay first: at most 100 keys a request, no duplicate keys (tests/test_aws_rules.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from moto.dynamodb.responses import DynamoHandler

from asg_optimizer.local.patching import Patches, Patching

_MOTO_LIMIT = 100  # keys a request; moto refuses more itself (the ValidationException is AWS's)


@dataclass
class BatchReadModel(Patching):
    unprocessed_calls: int = 0
    partial_answers: int = 0  # calls answered in part, for tests
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _patches: Patches = field(default_factory=Patches)

    def _take(self) -> bool:
        with self._lock:
            if self.unprocessed_calls <= 0:
                return False
            self.unprocessed_calls -= 1
            self.partial_answers += 1
            return True

    def _patch(self, patches: Patches) -> None:
        model, original = self, patches.original

        def batch_get_item(handler: DynamoHandler) -> Any:
            requested: dict[str, Any] = handler.body.get("RequestItems") or {}
            total = sum(len(r.get("Keys", [])) for r in requested.values())
            if total <= 1 or total > _MOTO_LIMIT or not model._take():
                return original(DynamoHandler, "batch_get_item")(handler)
            left: dict[str, Any] = {}
            for table, request in requested.items():
                keys = request["Keys"]
                kept = (len(keys) + 1) // 2
                if keys[kept:]:
                    left[table] = {**request, "Keys": keys[kept:]}
                request["Keys"] = keys[:kept]
            answer = original(DynamoHandler, "batch_get_item")(handler)
            answer.result.setdefault("UnprocessedKeys", {}).update(left)
            return answer

        patches.replace(DynamoHandler, batch_get_item=batch_get_item)
