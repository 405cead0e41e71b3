"""The clock the embedded AWS's timed models read (load-balancer health, draining, lifecycle-hook timeouts).

Real AWS times these in seconds; a test cannot wait 150 s for a target to turn healthy, and must not depend on
machine speed either. Every timed model reads `now()` in AWS seconds: `RealClock(scale)` runs `scale` AWS
seconds per wall second, `ManualClock` moves only when a test advances it (e.g. by a fixed step after every
handler invocation), so "healthy after three steps" holds on any machine.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class RealClock:
    """AWS seconds elapse `scale` times as fast as wall seconds (1.0: real time)."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError(f"clock scale must be positive, got {scale}")
        self.scale = scale
        self._start = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._start) * self.scale


class ManualClock:
    """Time moves only by `advance`; thread-safe, since executions run in threads of their own."""

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
