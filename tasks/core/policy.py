"""Per-ASG policy, parsed and validated from the group's `AsgOptimiser:*` tags.

Strict on purpose: a malformed or misspelt tag skips the group with one message naming the ASG, the tag and
the value, because guessing ("not a number, so use the default") could start swaps the owner ruled out.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from tasks.core.errors import InvalidInput
from tasks.core.pause import alarm_names
from tasks.core.tags import (
    ALLOWED_TYPES,
    COMMITMENTS,
    DENIED_TYPES,
    GRACE_PERIOD,
    LAUNCH_HOOKS,
    LAUNCH_HOOKS_BYPASS,
    MAX_PARALLEL,
    MIN_ON_DEMAND,
    MIN_ON_DEMAND_PERCENT,
    PAUSE_ON_ALARMS,
    POLICY_PREFIX,
    POLICY_TAGS,
    STATE_TAG_PREFIXES,
    WINDOW,
)

_INTEGER = re.compile(r"[0-9]+")
_WINDOW = re.compile(r"([0-9]{1,2})-([0-9]{1,2})")
_GLOB = re.compile(r"[a-z0-9.*?\[\]!-]+")


class PolicyError(ValueError):
    """One malformed policy tag; the message names the ASG, the tag and the value."""

    def __init__(self, asg_name: str, tag: str, value: str, problem: str) -> None:
        super().__init__(f"ASG {asg_name}: tag {tag}={value!r} is malformed: {problem}")
        self.asg_name, self.tag, self.value = asg_name, tag, value


@dataclass(frozen=True)
class Window:
    """UTC hours [start, end) when swaps may start; wraps past midnight when end < start (`22-06`)."""

    start: int
    end: int

    def contains(self, at: datetime) -> bool:
        hour = at.hour
        if self.start < self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end

    def __str__(self) -> str:
        return f"{self.start:02d}-{self.end:02d} UTC"


@dataclass(frozen=True)
class Policy:
    min_on_demand: int = 0
    min_on_demand_percent: int = 0
    max_parallel: int = 1
    grace_period: int = 0
    allowed_types: tuple[str, ...] = ()
    denied_types: tuple[str, ...] = ()
    window: Window | None = None
    bypass_launch_hooks: bool = False
    pause_alarms: tuple[str, ...] = ()  # AsgOptimiser:PauseOnAlarms: one in ALARM pauses the group (core/pause.py)
    uses_commitments: bool = True  # AsgOptimiser:Commitments=use: covered on-demand stays, idle ones pull spot back

    def on_demand_floor(self, desired: int) -> int:
        """On-demand instances that must stay: the larger of the count and the percent of desired, rounded up."""
        by_percent = math.ceil(self.min_on_demand_percent * desired / 100)
        return max(self.min_on_demand, by_percent)

    def in_window(self, at: datetime) -> bool:
        return self.window is None or self.window.contains(at)

    def allows_type(self, instance_type: str) -> bool:
        """For the spot-market choice: denied globs win over allowed ones; no allow list allows every type."""
        if any(fnmatch.fnmatchcase(instance_type, g) for g in self.denied_types):
            return False
        return not self.allowed_types or any(fnmatch.fnmatchcase(instance_type, g) for g in self.allowed_types)


def _integer(asg: str, tag: str, raw: str, low: int, high: int | None = None) -> int:
    text = raw.strip()
    if not _INTEGER.fullmatch(text) or int(text) < low or (high is not None and int(text) > high):
        bound = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise PolicyError(asg, tag, raw, f"expected a whole number {bound}")
    return int(text)


def _globs(asg: str, tag: str, raw: str) -> tuple[str, ...]:
    items = [item.strip() for item in raw.split(",")]
    if not raw.strip() or any(not item for item in items):
        raise PolicyError(asg, tag, raw, "expected comma-separated instance type globs such as 'm5.*,c5.large'")
    for item in items:
        if not _GLOB.fullmatch(item):
            raise PolicyError(asg, tag, raw, f"{item!r} is not an instance type glob (lowercase, digits, . * ? [ ] -)")
    return tuple(items)


def _window(asg: str, raw: str) -> Window:
    match = _WINDOW.fullmatch(raw.strip())
    if not match:
        raise PolicyError(asg, WINDOW, raw, "expected UTC hours START-END such as '22-06'")
    start, end = int(match.group(1)), int(match.group(2))
    if start > 23 or end > 24:
        raise PolicyError(asg, WINDOW, raw, "hours must be 0-23 (end may be 24)")
    if start == end:
        raise PolicyError(asg, WINDOW, raw, "start and end are the same hour; omit the tag to allow any hour")
    return Window(start, end)


def _covers(denied: str, allowed: str) -> bool:
    """Whether the denied glob matches every name the allowed one does. Decided only for denied globs whose one
    wildcard is `*` (then matching the allowed glob's own text is enough); `?` and `[...]` are never assumed to
    cover, so the check can miss a policy that denies everything but never flags one that allows something."""
    return not set(denied) & set("?[]") and fnmatch.fnmatchcase(allowed, denied)


def _check_some_type_allowed(asg: str, tags: Mapping[str, str], values: Mapping[str, object]) -> None:
    """A policy whose denied globs cover every allowed type (or every type: `*`, `*.*`) could never launch a spot;
    swapping would end `no-capacity` and cool pools down, blaming the market for a configuration."""
    denied = values.get("denied_types", ())
    allowed = values.get("allowed_types") or ("*.*",)  # every instance type name has a dot
    assert isinstance(denied, tuple) and isinstance(allowed, tuple)
    if denied and all(any(_covers(d, a) for d in denied) for a in allowed):
        raise PolicyError(asg, DENIED_TYPES, tags[DENIED_TYPES],
                          "it denies every instance type" + (f" allowed by {ALLOWED_TYPES}={tags[ALLOWED_TYPES]!r}"
                                                             if ALLOWED_TYPES in tags else "")
                          + ", so no spot could ever be launched")


def parse_policy(asg_name: str, tags: Mapping[str, str], *, default_grace_period: int) -> Policy:
    """The group's policy; raises PolicyError for the first malformed or unknown `AsgOptimiser:*` tag."""
    for key in sorted(tags):
        if key.startswith(POLICY_PREFIX) and key not in POLICY_TAGS and not key.startswith(STATE_TAG_PREFIXES):
            raise PolicyError(asg_name, key, tags[key], f"unknown tag; known: {', '.join(POLICY_TAGS)}")
    values: dict[str, object] = {"grace_period": default_grace_period}
    if MIN_ON_DEMAND in tags:
        values["min_on_demand"] = _integer(asg_name, MIN_ON_DEMAND, tags[MIN_ON_DEMAND], 0)
    if MIN_ON_DEMAND_PERCENT in tags:
        values["min_on_demand_percent"] = _integer(asg_name, MIN_ON_DEMAND_PERCENT, tags[MIN_ON_DEMAND_PERCENT], 0, 100)
    if MAX_PARALLEL in tags:
        values["max_parallel"] = _integer(asg_name, MAX_PARALLEL, tags[MAX_PARALLEL], 1)
    if GRACE_PERIOD in tags:
        values["grace_period"] = _integer(asg_name, GRACE_PERIOD, tags[GRACE_PERIOD], 0)
    if ALLOWED_TYPES in tags:
        values["allowed_types"] = _globs(asg_name, ALLOWED_TYPES, tags[ALLOWED_TYPES])
    if DENIED_TYPES in tags:
        values["denied_types"] = _globs(asg_name, DENIED_TYPES, tags[DENIED_TYPES])
    if WINDOW in tags:
        values["window"] = _window(asg_name, tags[WINDOW])
    if LAUNCH_HOOKS in tags:
        if tags[LAUNCH_HOOKS].strip() != LAUNCH_HOOKS_BYPASS:
            raise PolicyError(asg_name, LAUNCH_HOOKS, tags[LAUNCH_HOOKS], f"the only value is {LAUNCH_HOOKS_BYPASS!r}")
        values["bypass_launch_hooks"] = True
    if PAUSE_ON_ALARMS in tags:
        try:
            values["pause_alarms"] = alarm_names(tags[PAUSE_ON_ALARMS], PAUSE_ON_ALARMS)
        except InvalidInput as error:
            raise PolicyError(asg_name, PAUSE_ON_ALARMS, tags[PAUSE_ON_ALARMS],
                              str(error).split(": ", 1)[1]) from None
    if COMMITMENTS in tags:
        if tags[COMMITMENTS].strip() not in ("use", "ignore"):
            raise PolicyError(asg_name, COMMITMENTS, tags[COMMITMENTS], "expected 'use' or 'ignore'")
        values["uses_commitments"] = tags[COMMITMENTS].strip() == "use"
    _check_some_type_allowed(asg_name, tags, values)
    return Policy(**values)  # type: ignore[arg-type]
