"""Publish the swap's events on the default EventBridge bus (schema: tasks.core.swap_events).

Best effort by design: the swap has already changed AWS when it publishes, so a PutEvents that fails (or an
entry EventBridge rejects) is logged and counted, never turned into a failed swap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from tasks.aws.clients import client, error_code
from tasks.aws.invocation import logger
from tasks.core.swap_events import entry


def publish(detail_type: str, detail: Mapping[str, Any], *more: tuple[str, Mapping[str, Any]]) -> bool:
    """True when EventBridge accepted every event. `more` events go in the same PutEvents call (up to 10 entries
    per call), so a step that did two things publishes both for one call."""
    events = [(detail_type, detail), *more]
    types = [t for t, _ in events]
    try:
        answer = client("events").put_events(Entries=[entry(t, d) for t, d in events])
    except ClientError as error:
        logger.warning("event not published", extra={"detail_type": types, "error": error_code(error)})
        return False
    failed = [(t, e.get("ErrorCode")) for t, e in zip(types, answer.get("Entries", []), strict=False)
              if e.get("ErrorCode")]
    if answer.get("FailedEntryCount") or failed:
        logger.warning("event not published", extra={"failed": failed})
        return False
    return True
