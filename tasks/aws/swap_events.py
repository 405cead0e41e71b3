"""Publish the swap's events on the default EventBridge bus (schema: tasks.core.swap_events).

Best effort by design: the swap has already changed AWS when it publishes, so a PutEvents that fails (or an
entry EventBridge rejects) is logged and counted, never turned into a failed swap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from tasks.aws.clients import client, error_code
from tasks.core.swap_events import entry

logger = Logger()


def publish(detail_type: str, detail: Mapping[str, Any]) -> bool:
    """True when EventBridge accepted the event."""
    try:
        answer = client("events").put_events(Entries=[entry(detail_type, detail)])
    except ClientError as error:
        logger.warning("event not published", extra={"detail_type": detail_type, "error": error_code(error)})
        return False
    if answer.get("FailedEntryCount"):
        failed = answer["Entries"][0]
        logger.warning("event not published", extra={"detail_type": detail_type, "error": failed.get("ErrorCode")})
        return False
    return True
