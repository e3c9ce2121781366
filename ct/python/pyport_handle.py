"""Fixtures of ct/py_handle_SUITE.erl: objects that stay in Python."""

from __future__ import annotations

import weakref
from typing import Any

import erlang


class Counter:
    """A stateful object with no term form."""

    def __init__(self, start: int = 0) -> None:
        self.n = start

    def add(self, k: int = 1) -> int:
        self.n += k
        return self.n

    def __repr__(self) -> str:
        return f"Counter({self.n})"


class Point:
    """An object with a term form of its own (``__erlang__``)."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __erlang__(self) -> Any:
        return (erlang.Atom("point"), self.x, self.y)


def counter(start: int = 0) -> Counter:
    return Counter(start)


def watched(pid: erlang.Pid, tag: str) -> Counter:
    """A Counter that tells ``pid`` ``{finalized, Tag}`` when Python frees it."""
    obj = Counter()
    weakref.finalize(obj, erlang.send, pid, (erlang.Atom("finalized"), tag))
    return obj


def mixed() -> list[Any]:
    return [1, "two", Counter(3), {"inner": Counter(4)}, Point(5, 6)]


def made() -> dict[str, Any]:
    """A result with a handle made by Python itself."""
    return {"c": erlang.handle(Counter(7)), "n": 1}


def total(counters: Any, extra: dict[str, Any]) -> int:
    """Sums the counts of the Counters anywhere in nested arguments."""
    def walk(v: Any) -> int:
        if isinstance(v, Counter):
            return v.n
        if isinstance(v, (list, tuple)):
            return sum(walk(x) for x in v)
        if isinstance(v, dict):
            return sum(walk(x) for x in v.values())
        return 0
    return walk(counters) + walk(extra)


def count_of(c: Counter) -> int:
    return c.n


def point(x: int, y: int) -> Point:
    return Point(x, y)
