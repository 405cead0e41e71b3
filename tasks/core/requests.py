"""The scanner's and the sweep's input, checked before anything is read or changed.

Both run from an EventBridge schedule, which may deliver its own Scheduled Event fields: keys we do not use are
ignored, but a key we do use with a wrong type is refused with the key and value named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tasks.core.errors import InvalidInput
from tasks.core.timing import Timing, parse_timing

DEFAULT_ORPHAN_AFTER_SECONDS = 15 * 60


@dataclass(frozen=True)
class ScanRequest:
    dry_run: bool = False
    asg_names: tuple[str, ...] | None = None  # None: every opted-in group
    now: datetime | None = None  # None: the clock
    timing: Timing = field(default_factory=Timing)
    # The Scheduled Event's `time`: executions are named from it, so a redelivered event (EventBridge may invoke a
    # target more than once) gets the same names and starts nothing new.
    scheduled_at: datetime | None = None


@dataclass(frozen=True)
class SweepRequest:
    now: datetime | None = None
    orphan_after_seconds: int = DEFAULT_ORPHAN_AFTER_SECONDS


def required_text(data: Mapping[str, Any], key: str, label: str) -> str:
    """A non-empty string field, or InvalidInput naming `label` and the value found."""
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{label} must be a non-empty string, got {value!r}")
    return value


def parse_now(raw: object, label: str = "now") -> datetime | None:
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if isinstance(raw, str) else None
    except ValueError:
        at = None
    if at is None:
        raise InvalidInput(f"{label} must be an ISO 8601 timestamp such as '2026-01-31T22:30:00Z', got {raw!r}")
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def parse_scan_request(event: Mapping[str, Any]) -> ScanRequest:
    dry_run = event.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InvalidInput(f"dry_run must be true or false, got {dry_run!r}")
    names = event.get("asg_names")
    if names is not None and (
        not isinstance(names, list) or not all(isinstance(n, str) and n for n in names)
    ):
        raise InvalidInput(f"asg_names must be a list of ASG names, got {names!r}")
    timing = event.get("timing")
    if timing is not None and not isinstance(timing, Mapping):
        raise InvalidInput(f"timing must be an object of timing keys, got {timing!r}")
    return ScanRequest(
        dry_run=dry_run,
        asg_names=tuple(dict.fromkeys(names)) if names is not None else None,
        now=parse_now(event.get("now")),
        timing=parse_timing(timing),
        scheduled_at=parse_now(event.get("time"), "time"),
    )


def parse_sweep_request(event: Mapping[str, Any]) -> SweepRequest:
    bound = event.get("orphan_after_seconds", DEFAULT_ORPHAN_AFTER_SECONDS)
    if isinstance(bound, bool) or not isinstance(bound, int) or bound < 0:
        raise InvalidInput(f"orphan_after_seconds must be a whole number of seconds >= 0, got {bound!r}")
    return SweepRequest(now=parse_now(event.get("now")), orphan_after_seconds=bound)
