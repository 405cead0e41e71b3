"""Execution names: `<asg>-<instance-id>-<UTC yyyymmddThhmmss>`, within Step Functions' 80-character rule."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

MAX_NAME = 80
_STAMP = "%Y%m%dT%H%M%S"
# Step Functions accepts more, but says a name with any character outside 0-9A-Za-z-_ cannot be logged to
# CloudWatch Logs: every other character (".", spaces, unicode, ...) becomes "-".
_FORBIDDEN = re.compile(r"[^0-9A-Za-z_-]")
_PARSE = re.compile(r"^(?P<asg>.*)-(?P<instance>i-[0-9a-f]{8,17})-(?P<stamp>\d{8}T\d{6})$")


def execution_name(asg_name: str, instance_id: str, at: datetime) -> str:
    """Cut the ASG part, never the instance id or stamp, so a swap stays findable by instance."""
    stamp = at.astimezone(UTC).strftime(_STAMP)
    tail = f"-{instance_id}-{stamp}"
    asg = _FORBIDDEN.sub("-", asg_name).strip("-") or "asg"
    return asg[: MAX_NAME - len(tail)].rstrip("-") + tail


def instance_of(name: str) -> str | None:
    """The on-demand instance an execution name refers to, or None for names we did not make."""
    match = _PARSE.match(name)
    return match.group("instance") if match else None


def asg_part_of(name: str) -> str | None:
    """The (sanitized, possibly cut) ASG part of an execution name we made, or None for other names."""
    match = _PARSE.match(name)
    return match.group("asg") if match else None


def group_prefix(asg_name: str) -> str:
    """The sanitized ASG part as it appears in names (before any cut), for filtering by group."""
    return _FORBIDDEN.sub("-", asg_name).strip("-") or "asg"


def client_token(execution: str) -> str:
    """RunInstances idempotency token (64 ASCII characters at most): a retried launch returns the same spot."""
    return hashlib.sha256(execution.encode()).hexdigest()[:64]


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def belongs_to(name: str, asg_name: str) -> bool:
    """Whether an execution name is one we made for this group (the ASG part is compared as execution_name
    sanitizes and cuts it for that instance id)."""
    instance_id = instance_of(name)
    if instance_id is None:
        return False
    return asg_part_of(name) == asg_part_of(execution_name(asg_name, instance_id, _EPOCH))
