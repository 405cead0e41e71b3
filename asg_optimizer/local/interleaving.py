"""How the embedded AWS interleaves handlers: like AWS, one emulated API call is atomic, a handler is not.

Lambdas of different executions run at the same time in AWS, and their AWS calls interleave: a handler that reads
a group and then writes it can lose an update to another that read in between. moto's backends are not
thread-safe, so every emulated call holds `CALL_LOCK` for its duration (in-process: around moto's request
dispatch; served: around each HTTP request). The Lambda seam lets go of the lock while a handler runs, so handlers
of different executions interleave between their calls and never inside one.

Races must be reproduced every run, not by luck: `hold_after_first_call("raise-capacity", 10)` holds each of the
first ten invocations of that function right after its first AWS call (its read, in a read-modify-write) until
all ten have made it, which is the worst interleaving for a lost update.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from moto.core.botocore_stubber import BotocoreStubber

from asg_optimizer.local.patching import Patches

CALL_LOCK = threading.RLock()
_local = threading.local()
_patches = Patches()
_ACTION = re.compile(r"(?:^|&)Action=([A-Za-z0-9]+)")


@dataclass
class Invocation:
    """The handler running on this thread: its function name, the execution it serves (if its event names one)
    and the AWS calls it has made so far."""

    function_name: str
    execution: str | None = None
    calls: list[str] = field(default_factory=list)


@dataclass
class Hold:
    """Holds the first `parties` invocations of `function` after their first AWS call (or their first call of
    `after`, an operation name) until all of them got there. `tripped` tells a test the interleaving happened;
    `timed_out` that some invocation never arrived (the handlers went on after `timeout` seconds, so a wrong
    count fails the test instead of hanging it)."""

    function: str
    parties: int
    after: str | None = None
    timeout: float = 60.0
    arrived: list[str] = field(default_factory=list)  # the operations the held invocations had just made
    tripped: bool = False
    timed_out: bool = False
    _barrier: threading.Barrier = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._barrier = threading.Barrier(self.parties, timeout=self.timeout)

    def applies(self, invocation: Invocation, operation: str) -> bool:
        name = invocation.function_name
        if name != self.function and not name.endswith(f"-{self.function}"):
            return False
        if self.after is None:
            return len(invocation.calls) == 1
        return invocation.calls.count(operation) == 1 and operation == self.after

    def after_call(self, invocation: Invocation, operation: str) -> None:
        if not self.applies(invocation, operation):
            return
        with self._lock:
            if len(self.arrived) >= self.parties:
                return  # the held round is over: later invocations (retries, stragglers) pass
            self.arrived.append(operation)
        try:
            self._barrier.wait()
            self.tripped = True
        except threading.BrokenBarrierError:
            self.timed_out = True


holds: list[Hold] = []


@dataclass
class Pause:
    """Stops the first invocation of `function` right after its first `after` call until the test calls
    `resume()`: the test acts (as a person, Terraform or a scaling policy would) at exactly that point."""

    function: str
    after: str
    timeout: float = 60.0
    reached: threading.Event = field(default_factory=threading.Event)
    _go: threading.Event = field(default_factory=threading.Event)

    def after_call(self, invocation: Invocation, operation: str) -> None:
        name = invocation.function_name
        if operation != self.after or self.reached.is_set():
            return
        if name != self.function and not name.endswith(f"-{self.function}"):
            return
        self.reached.set()
        self._go.wait(self.timeout)

    def wait(self) -> None:
        if not self.reached.wait(self.timeout):
            raise TimeoutError(f"{self.function} never called {self.after} within {self.timeout}s")

    def resume(self) -> None:
        self._go.set()


pauses: list[Pause] = []


@contextmanager
def pause_after(function: str, after: str, *, timeout: float = 60.0) -> Iterator[Pause]:
    """`with pause_after("attach-spot", "AttachInstances") as pause: pause.wait(); <act>; pause.resume()`."""
    pause = Pause(function, after, timeout)
    pauses.append(pause)
    try:
        yield pause
    finally:
        pause.resume()
        pauses.remove(pause)


@contextmanager
def hold_after_first_call(function: str, parties: int, *, after: str | None = None,
                          timeout: float = 60.0) -> Iterator[Hold]:
    """Force the worst interleaving of `parties` concurrent invocations of `function` (its stack key, e.g.
    "raise-capacity"): none goes past its first AWS call (or first `after` call) before all have made it."""
    hold = Hold(function, parties, after, timeout)
    holds.append(hold)
    try:
        yield hold
    finally:
        holds.remove(hold)
        hold._barrier.abort()  # release anyone still waiting: the test is over


@contextmanager
def invocation(function_name: str, execution: str | None = None) -> Iterator[Invocation]:
    """The seam runs each handler inside this: the call lock is let go (handlers interleave between calls) and
    the thread knows which function it serves (for holds)."""
    held = _release_all()
    current = Invocation(function_name, execution)
    previous, _local.invocation = getattr(_local, "invocation", None), current
    try:
        yield current
    finally:
        _local.invocation = previous
        for _ in range(held):
            CALL_LOCK.acquire()


def running_function() -> str | None:
    """The function whose handler runs on this thread (in-process calls), or None for a caller outside Lambda."""
    current = running_invocation()
    return current.function_name if current is not None else None


def running_invocation() -> Invocation | None:
    """The handler running on this thread (in-process calls), or None for a caller outside Lambda."""
    return getattr(_local, "invocation", None)


def _release_all() -> int:
    """Let go of every level of CALL_LOCK this thread holds (a Lambda Invoke call holds it around the seam)."""
    count = 0
    while True:
        try:
            CALL_LOCK.release()
        except RuntimeError:  # not held (any more) by this thread
            return count
        count += 1


def operation_of(headers: Any, body: Any, path: str = "") -> str:
    """The API operation of a request: X-Amz-Target for JSON protocols, Action= for query protocols."""
    target = headers.get("X-Amz-Target") if headers is not None else None
    if target:  # botocore's in-process requests carry it as bytes (str() of which ends in a quote)
        return (target.decode() if isinstance(target, bytes) else str(target)).rpartition(".")[2]
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    match = _ACTION.search(text)
    if match:
        return match.group(1)
    return path.rstrip("/").rpartition("/")[2] or "?"


def _after_call(operation: str) -> None:
    current: Invocation | None = getattr(_local, "invocation", None)
    if current is None:
        return
    current.calls.append(operation)
    for hold in list(holds):
        hold.after_call(current, operation)
    for pause in list(pauses):
        pause.after_call(current, operation)


def atomic_call(call: Callable[[], Any], operation: str) -> Any:
    """Run one emulated AWS call under the lock, then let holds see it (outside the lock)."""
    with CALL_LOCK:
        result = call()
    _after_call(operation)
    return result


def install() -> None:
    """In-process: every request moto answers is one atomic call."""
    _patches.install(lambda p: p.replace(BotocoreStubber, process_request=_process_request))


def _process_request(stubber: BotocoreStubber, request: Any) -> Any:
    original = _patches.original(BotocoreStubber, "process_request")
    path = getattr(request, "url", "") or ""
    return atomic_call(lambda: original(stubber, request), operation_of(request.headers, request.body, path))


def uninstall() -> None:
    _patches.undo()


def atomic_requests(app: Any) -> Any:
    """Served (`local serve`): WSGI middleware making each HTTP request one atomic call, as in-process."""

    def serve(environ: dict[str, Any], start_response: Any) -> Any:
        # The body is read by the app; the whole response is produced inside the lock (moto answers in one piece).
        with CALL_LOCK:
            return list(app(environ, start_response))

    return serve

