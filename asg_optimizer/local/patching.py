"""Replacing moto's (and Powertools') attributes with ours, and putting them back: one recorder for every model.

Each model of the embedded AWS patches methods of code it does not own. A `Patches` records what each
replacement found (the owner's own value, or that it had none), so `undo` restores exactly that, newest first:
models that wrap the same method (three wrap moto's request stubber) unwind as they were stacked, and an
install that fails halfway leaves nothing behind. getattr/setattr keep mypy out of it: assigning to a method is
an error to mypy (`method-assign`), and patching is exactly that. In exchange, `replace` checks at run time what
mypy checked before: the attribute exists (a moto upgrade that renames it fails loudly, not silently unpatched).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_NONE = object()  # the owner had no attribute of its own by that name (it inherited one, or had none)
_generation = [0]  # bumped by every change any Patches makes, so what is kept about a patched class can tell
_generation_lock = threading.Lock()


def generation() -> int:
    """How many changes every Patches has made (or undone) in this process so far."""
    return _generation[0]


def _changed() -> None:
    with _generation_lock:
        _generation[0] += 1


class Patches:
    """One model's replacements, undone in reverse order."""

    def __init__(self) -> None:
        self._done: list[tuple[object, str, object]] = []  # (owner, name, its own value before, or _NONE)
        self._originals: dict[tuple[object, str], Any] = {}  # what a wrapper calls through to
        self._installed = False
        self._lock = threading.RLock()

    @property
    def installed(self) -> bool:
        return self._installed

    def install(self, apply: Callable[[Patches], object]) -> None:
        """Run `apply` (which calls `replace`/`add`) once: again while installed it is not run; if it raises,
        what it had set is undone before the error goes on."""
        with self._lock:
            if self._installed:
                return
            try:
                apply(self)
            except BaseException:
                self.undo()
                raise
            self._installed = True

    def replace(self, owner: object, /, **new: object) -> None:
        """`owner.name = value` for each `name=value`, in order; what each had stays reachable as
        `original(owner, name)`."""
        for name, value in new.items():
            original = getattr(owner, name)  # AttributeError: there is nothing of that name to replace
            self._set(owner, name, value)
            self._originals[(owner, name)] = original

    def add(self, owner: object, /, **new: object) -> None:
        """`owner.name = value` for attributes it lacks (operations moto does not implement); undo removes them."""
        for name, value in new.items():
            if hasattr(owner, name):
                raise AttributeError(f"{owner!r} already has {name!r}: add would hide it (replace it instead)")
            self._set(owner, name, value)

    def original(self, owner: object, name: str) -> Any:
        """What `replace` found at `owner.name` (as getattr gave it: a staticmethod's function, a property).
        Still answers after `undo`, so a call already on its way through a wrapper reaches the original."""
        return self._originals[(owner, name)]

    def undo(self) -> None:
        """Restore every replaced attribute, newest first (harmless when nothing is installed)."""
        with self._lock:
            while self._done:
                owner, name, own = self._done.pop()
                if own is _NONE:
                    delattr(owner, name)
                else:
                    setattr(owner, name, own)
                _changed()
            self._installed = False

    def _set(self, owner: object, name: str, new: object) -> None:
        with self._lock:
            if any(o is owner and n == name for o, n, _ in self._done):
                raise ValueError(f"{name!r} of {owner!r} replaced twice by one Patches")
            self._done.append((owner, name, vars(owner).get(name, _NONE)))
            setattr(owner, name, new)
            _changed()


class Patching:
    """A model that works by patching: `install` runs its `_patch` once, `uninstall` undoes it (either may be
    called any number of times, and `uninstall` after an install that failed). Each model has its own
    `_patches: Patches = field(default_factory=Patches)`."""

    _patches: Patches

    def install(self) -> None:
        self._patches.install(self._patch)

    def uninstall(self) -> None:
        self._patches.undo()

    def _patch(self, patches: Patches) -> None:
        raise NotImplementedError
