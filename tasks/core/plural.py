"""Counts in messages people read: "1 group", "2 groups", "1 poll" — never "1 groups"."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`counted(1, "group")` -> "1 group"; `counted(3, "group")` -> "3 groups"; irregular plurals passed in."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
