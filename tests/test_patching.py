"""The patch recorder every embedded-AWS model installs through (asg_optimizer/local/patching.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from asg_optimizer.local.patching import Patches, Patching


class Logged:
    """An owner that records each attribute set or deleted on it, in order."""

    def __init__(self) -> None:
        self.__dict__["log"] = []
        self.__dict__.update(a="a0", b="b0", c="c0")

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__["log"].append(("set", name, value))
        self.__dict__[name] = value

    def __delattr__(self, name: str) -> None:
        self.__dict__["log"].append(("del", name))
        del self.__dict__[name]


class Base:
    def greet(self) -> str:
        return "base"

    @staticmethod
    def parse(text: str) -> str:
        return f"parsed {text}"


class Child(Base):
    pass


def test_undo_restores_each_original_newest_first() -> None:
    owner, patches = Logged(), Patches()
    patches.install(lambda p: p.replace(owner, a="a1", b="b1", c="c1"))
    assert (owner.a, owner.b, owner.c) == ("a1", "b1", "c1")
    owner.log.clear()
    patches.undo()
    assert owner.log == [("set", "c", "c0"), ("set", "b", "b0"), ("set", "a", "a0")]
    assert not patches.installed


def test_a_second_install_does_not_run_again_and_a_stopped_one_installs_afresh() -> None:
    owner, patches, runs = Logged(), Patches(), []

    def apply(p: Patches) -> None:
        runs.append(1)
        p.replace(owner, a="a1")

    patches.install(apply)
    patches.install(apply)  # no second record: one undo restores the original, not our own replacement
    assert (len(runs), owner.a, patches.installed) == (1, "a1", True)
    for _ in range(3):  # the embedded AWS started and stopped many times in one process
        patches.undo()
        patches.undo()  # stopping twice (or a start that never got this far) is harmless
        assert owner.a == "a0"
        patches.install(apply)
        assert owner.a == "a1"
    assert len(runs) == 4


def test_an_install_that_fails_midway_undoes_what_it_had_set() -> None:
    owner, patches = Logged(), Patches()

    def apply(p: Patches) -> None:
        p.replace(owner, a="a1")
        p.replace(owner, b="b1")
        raise RuntimeError("model failed to install")

    with pytest.raises(RuntimeError, match="model failed to install"):
        patches.install(apply)
    assert (owner.a, owner.b, patches.installed) == ("a0", "b0", False)
    patches.install(lambda p: p.replace(owner, a="a2"))  # and it can be installed later
    assert owner.a == "a2"


def test_replacing_a_name_the_owner_lacks_fails_before_setting_anything() -> None:
    owner, patches = Logged(), Patches()
    with pytest.raises(AttributeError):
        patches.install(lambda p: p.replace(owner, a="a1", renamed_by_moto="x"))
    assert owner.a == "a0" and "renamed_by_moto" not in vars(owner)


def test_add_gives_a_missing_attribute_and_undo_removes_it_but_add_never_hides_an_existing_one() -> None:
    patches = Patches()
    patches.install(lambda p: p.add(Child, start_refresh=lambda self: "ours"))
    assert vars(Child)["start_refresh"](Child()) == "ours"
    patches.undo()
    assert not hasattr(Child, "start_refresh")
    with pytest.raises(AttributeError, match="already has 'greet'"):
        Patches().install(lambda p: p.add(Child, greet=lambda self: "ours"))


def test_an_inherited_method_is_restored_to_inherited_and_a_staticmethod_stays_one() -> None:
    patches = Patches()

    def apply(p: Patches) -> None:
        p.replace(Child, greet=lambda self: "child " + p.original(Child, "greet")(self))
        p.replace(Base, parse=staticmethod(lambda text: "ours " + p.original(Base, "parse")(text)))

    patches.install(apply)
    assert (Child().greet(), Base().greet(), Base.parse("x")) == ("child base", "base", "ours parsed x")
    patches.undo()
    assert "greet" not in vars(Child) and Child().greet() == "base"
    assert isinstance(vars(Base)["parse"], staticmethod) and Base().parse("x") == "parsed x"


def test_models_wrapping_one_method_unwind_as_stacked_and_call_through_to_the_one_below() -> None:
    inner, outer = Patches(), Patches()
    inner.install(lambda p: p.replace(Child, greet=lambda self: "inner " + p.original(Child, "greet")(self)))
    outer.install(lambda p: p.replace(Child, greet=lambda self: "outer " + p.original(Child, "greet")(self)))
    assert Child().greet() == "outer inner base"
    in_flight = outer.original(Child, "greet")
    outer.undo()
    assert Child().greet() == "inner base"
    assert outer.original(Child, "greet") is in_flight  # a call already inside the wrapper still goes through
    inner.undo()
    assert "greet" not in vars(Child) and Child().greet() == "base"


def test_one_recorder_replacing_the_same_name_twice_is_refused() -> None:
    owner, patches = Logged(), Patches()
    with pytest.raises(ValueError, match="replaced twice"):
        patches.install(lambda p: [p.replace(owner, a="a1"), p.replace(owner, a="a2")])
    assert owner.a == "a0"


@dataclass
class GreeterModel(Patching):
    word: str = "hello"
    installs: int = 0
    _patches: Patches = field(default_factory=Patches)

    def _patch(self, patches: Patches) -> None:
        self.installs += 1
        patches.replace(Child, greet=lambda _: f"{self.word} " + patches.original(Child, "greet")(_))


def test_a_model_installs_once_and_uninstalls_however_often_it_is_asked() -> None:
    model = GreeterModel()
    model.uninstall()  # a half-started embedded AWS uninstalls models it never installed
    model.install()
    model.install()
    assert (Child().greet(), model.installs) == ("hello base", 1)
    model.uninstall()
    model.uninstall()
    assert Child().greet() == "base"
