"""Lazily created, cached boto3 clients and the translation of throttling into a retryable workflow error.

Clients are made on first use inside a handler, never at import time: a client created before the embedded
AWS starts would talk past it. `reset_clients()` drops the cache (tests call it between mocks).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from tasks.core.errors import AwsThrottled

# Standard mode retries throttling with exponential backoff and full jitter; AWS_MAX_ATTEMPTS may override.
_CONFIG = Config(retries={"mode": "standard"})

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "ResourceContention",
        "ResourceContentionFault",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        # Auto Scaling: a scaling activity of the group is in flight (Terminate/UpdateAutoScalingGroup); transient
        "ScalingActivityInProgress",
    }
)


# The Pricing API answers in us-east-1 (and two other regions) only; a function with no route to it must fall
# back to the price snapshot in seconds, not wait out the default 60 s connect timeout.
PRICING_REGION = "us-east-1"
_PRICING_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 2})


# Set by `clients_from`: another caller's clients (the CLI's own session, region and endpoint) for the readers.
_borrowed: ContextVar[Callable[[str], Any] | None] = ContextVar("borrowed_clients", default=None)


def client(service: str) -> Any:
    borrowed = _borrowed.get()
    return borrowed(service) if borrowed is not None else _own_client(service)


@functools.cache
def _own_client(service: str) -> Any:
    if service == "pricing":
        return boto3.client(service, region_name=PRICING_REGION, config=_PRICING_CONFIG)
    return boto3.client(service, config=_CONFIG)


@contextmanager
def clients_from(make: Callable[[str], Any]) -> Iterator[None]:
    """Within this block the adapters call AWS through `make(service)`: the CLI reads groups, instances and
    prices with the same readers as the functions, on its own session (--profile, --region, --endpoint-url)."""
    token = _borrowed.set(make)
    try:
        yield
    finally:
        _borrowed.reset(token)


def reset_clients() -> None:
    _own_client.cache_clear()


def batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """`items` in requests of at most `size` (an API's limit on ids or names per call)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def throttling_as_retryable() -> Iterator[None]:
    """Turn a throttled or contended call into AwsThrottled, which the state machine retries with jitter."""
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        if code in THROTTLING_CODES:
            raise AwsThrottled(f"{error.operation_name}: {code}") from error
        raise
