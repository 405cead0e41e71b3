"""The clock the embedded AWS's timed models read (load-balancer health, draining, lifecycle-hook timeouts, the
end of a spot's interruption notice).

Real AWS times these in seconds; a test cannot wait 150 s for a target to turn healthy, and must not depend on
machine speed either. Every timed model reads `now()` in AWS seconds: `RealClock(scale)` runs `scale` AWS
seconds per wall second, `ManualClock` moves only when a test advances it (e.g. by a fixed step after every
handler invocation), so "healthy after three steps" holds on any machine.

`epoch()` is the Unix time of `EmbeddedAws(notice_clock=...)`: what the handlers decide an interruption's release
deadline by (tasks.aws.clock) and what EC2's reclaim of the spot is timed by, so the two never race each other:
the wall clock under a `RealClock` (its scale speeds the models, not Lambda's clock), the start plus the time
advanced under a `ManualClock` (a notice runs out only when the test moves the clock past it).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

_MANUAL_WAKE_SECONDS = 0.05  # how often a sleeper on a manual clock looks at `stop` (it is woken by `advance`)


class Clock(Protocol):
    def now(self) -> float: ...

    def epoch(self) -> float: ...

    def sleep_until_epoch(self, at: float, stop: threading.Event) -> bool: ...


class RealClock:
    """AWS seconds elapse `scale` times as fast as wall seconds (1.0: real time)."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError(f"clock scale must be positive, got {scale}")
        self.scale = scale
        self._start = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._start) * self.scale

    def epoch(self) -> float:
        return time.time()

    def sleep_until_epoch(self, at: float, stop: threading.Event) -> bool:
        """True once `epoch()` reaches `at`; False if `stop` is set first."""
        while (left := at - time.time()) > 0:
            if stop.wait(left):
                return False
        return not stop.is_set()


class ManualClock:
    """Time moves only by `advance`; thread-safe, since executions run in threads of their own."""

    def __init__(self, start_epoch: float | None = None) -> None:
        self._now = 0.0
        self._start_epoch = time.time() if start_epoch is None else start_epoch
        self._moved = threading.Condition()

    def now(self) -> float:
        with self._moved:
            return self._now

    def epoch(self) -> float:
        with self._moved:
            return self._start_epoch + self._now

    def advance(self, seconds: float) -> None:
        with self._moved:
            self._now += seconds
            self._moved.notify_all()

    def sleep_until_epoch(self, at: float, stop: threading.Event) -> bool:
        """True once the clock has been advanced to `at`; False if `stop` is set first."""
        with self._moved:
            while self._start_epoch + self._now < at:
                if stop.is_set():
                    return False
                self._moved.wait(_MANUAL_WAKE_SECONDS)
        return not stop.is_set()
