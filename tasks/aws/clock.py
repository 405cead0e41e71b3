"""The Unix time handlers decide by when a deadline is in the event (an interruption's release deadline).

In Lambda the wall clock. The embedded AWS points it at its own clock (asg_optimizer.local.clock), which also
times EC2's reclaim of the spot, so a test decides when a notice runs out and a slow machine never does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_now: Callable[[], float] = time.time


def now() -> float:
    return _now()


def use(clock: Callable[[], float] | None) -> None:
    """Decide by `clock` from now on (None: the wall clock again)."""
    global _now
    _now = clock or time.time
