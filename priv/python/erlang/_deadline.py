"""Deadlines that interrupt Python code: the Python side of the watchdog
(``_pyport.arm_deadline``, src/watchdog.rs, docs/robustness.md).

The watchdog raises ``_pyport.TaskDeadline`` in whatever Python code runs
on the loop thread when the innermost armed deadline passes. It may be
armed only around code that holds the thread: a plain function
(:func:`call_with_deadline`), or one *step* of a coroutine, the code between
two suspensions (:class:`StepBounded`); never across a suspension, where
other tasks run and would get the exception.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, TypeVar, Union

from ._native import _pyport

__all__ = ["Limit", "StepBounded", "TaskDeadline", "call_with_deadline"]

_T = TypeVar("_T")

#: what the watchdog raises; a BaseException, so ``except Exception`` in
#: task code does not swallow it
TaskDeadline = _pyport.TaskDeadline

#: the seconds a step may run: a number, or a function giving it before
#: each step (None: no bound for that step)
Limit = Union[float, Callable[[], "float | None"]]


def call_with_deadline(func: Callable[..., _T], args: Any, kwargs: dict[str, Any],
                       seconds: float) -> _T:
    """``func(*args, **kwargs)`` with the watchdog armed: still running
    after ``seconds``, it gets ``TaskDeadline`` raised in its frame (a
    coroutine function only builds its coroutine here, well within)."""
    token = _pyport.arm_deadline(seconds)
    try:
        return func(*args, **kwargs)
    finally:
        _pyport.disarm_deadline(token)


class StepBounded(Coroutine[Any, Any, _T]):
    """``awaitable`` with each of its steps run under the watchdog: a step
    still running after ``limit`` seconds gets ``TaskDeadline`` raised in
    it. Time spent suspended (awaiting) does not count; a blocking
    ``erlang.call`` made within a step does, as for a plain task.

    A coroutine object itself, so it can be a Task's body, or awaited."""

    __slots__ = ("_it", "_limit")

    def __init__(self, awaitable: Awaitable[_T], limit: Limit) -> None:
        self._it: Generator[Any, Any, _T] = awaitable.__await__()
        self._limit = limit

    def _seconds(self) -> float | None:
        limit = self._limit
        return limit() if callable(limit) else limit

    def send(self, value: Any) -> Any:
        seconds = self._seconds()
        if seconds is None:
            return self._it.send(value)
        token = _pyport.arm_deadline(max(seconds, 0.0))
        try:
            return self._it.send(value)
        finally:
            _pyport.disarm_deadline(token)

    def throw(self, typ: Any, val: Any = None, tb: TracebackType | None = None) -> Any:
        seconds = self._seconds()
        token = None if seconds is None else _pyport.arm_deadline(max(seconds, 0.0))
        try:
            if val is None and tb is None:
                return self._it.throw(typ)
            return self._it.throw(typ, val, tb)
        finally:
            if token is not None:
                _pyport.disarm_deadline(token)

    def close(self) -> None:
        self._it.close()

    def __next__(self) -> Any:
        return self.send(None)

    def __iter__(self) -> StepBounded[_T]:
        return self

    def __await__(self) -> Generator[Any, None, _T]:
        return self
