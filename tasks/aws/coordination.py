"""The cooldown store: a DynamoDB table (name in COOLDOWN_TABLE) with TTL on `expires_at`.

DynamoDB over alternatives: it survives across invocations and executions (an ASG tag would not cover pools
shared by groups; SSM parameters throttle at tens of writes per second), a conditional put makes "churn an
instance at most once per cooldown" atomic, and TTL removes old entries without a sweeper. TTL deletes late,
so readers compare `expires_at` with the clock themselves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from botocore.exceptions import ClientError

from tasks.aws.clients import client, error_code
from tasks.core.cooldowns import COOLDOWN_SECONDS, cooling_pools, expiry, instance_key, pool_key
from tasks.core.prices import Pool

TABLE_ENV = "COOLDOWN_TABLE"
KEY, EXPIRES_AT = "cooldown_key", "expires_at"
_BATCH = 25  # BatchWriteItem's limit


def table_name() -> str:
    name = os.environ.get(TABLE_ENV, "")
    if not name:
        raise RuntimeError(f"{TABLE_ENV} is not set: the function was deployed without the cooldown table")
    return name


def _item(key: str, expires_at: int, reason: str, source: str) -> dict[str, dict[str, str]]:
    return {KEY: {"S": key}, EXPIRES_AT: {"N": str(expires_at)}, "reason": {"S": reason}, "source": {"S": source}}


def cool_pools(pools: Iterable[Pool], *, reason: str, source: str, now: float | None = None,
               seconds: int = COOLDOWN_SECONDS) -> list[str]:
    """Put pools on cooldown (a later cooldown replaces an earlier one); returns the keys written."""
    until = expiry(time.time() if now is None else now, seconds)
    keys = sorted({pool_key(p) for p in pools})
    dynamodb = client("dynamodb")
    for start in range(0, len(keys), _BATCH):
        requests = [{"PutRequest": {"Item": _item(k, until, reason, source)}} for k in keys[start:start + _BATCH]]
        pending = {table_name(): requests}
        for _ in range(5):  # unprocessed items come back under load; a few retries, then give up loudly
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(0.2)
        if pending:
            raise RuntimeError(f"cooldown table kept {len(pending[table_name()])} writes unprocessed")
    return keys


def claim_instance(instance_id: str, *, reason: str, now: float | None = None,
                   seconds: int = COOLDOWN_SECONDS) -> bool:
    """Mark an instance as churned; False when it already was within the cooldown (nothing written). Atomic, so
    two recommendations delivered together claim it once."""
    at = time.time() if now is None else now
    try:
        client("dynamodb").put_item(
            TableName=table_name(), Item=_item(instance_key(instance_id), expiry(at, seconds), reason, instance_id),
            ConditionExpression="attribute_not_exists(#k) OR #e <= :now",
            ExpressionAttributeNames={"#k": KEY, "#e": EXPIRES_AT},
            ExpressionAttributeValues={":now": {"N": str(int(at))}},
        )
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def active_pools(now: float | None = None) -> frozenset[Pool]:
    """Every pool cooling now (one paginated Scan: the table holds only the pools of the last half hour)."""
    at = time.time() if now is None else now
    pages = client("dynamodb").get_paginator("scan").paginate(
        TableName=table_name(),
        FilterExpression="begins_with(#k, :pool) AND #e > :now",
        ExpressionAttributeNames={"#k": KEY, "#e": EXPIRES_AT},
        ExpressionAttributeValues={":pool": {"S": "pool#"}, ":now": {"N": str(int(at))}},
    )
    entries = [(item[KEY]["S"], float(item[EXPIRES_AT]["N"])) for page in pages for item in page["Items"]]
    return cooling_pools(entries, at)
