"""Cooperative scheduling for functions the port runs as tasks:
``erlang.schedule``, ``erlang.schedule_py`` and ``erlang.consume_time_slice``,
as in the NIF-based API this follows (docs/interop.md).

A function returns a :class:`ScheduleMarker` instead of a value; the port
server then continues the task with :func:`run_marker`, as an asyncio Task
that does not hold the loop while Erlang (or the next step) works.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from . import _context
from ._interop import async_call, check_name, resolve
from ._native import _pyport
from ._types import Atom

__all__ = [
    "ScheduleMarker",
    "SchedulePy",
    "consume_time_slice",
    "follow_inline",
    "is_marker",
    "reset_time_slice",
    "run_marker",
    "schedule",
    "schedule_py",
]


class ScheduleMarker:
    """What :func:`schedule` and :func:`schedule_py` return. It takes effect
    only when returned from a function the port runs as a task: the task's
    result then becomes that of the continuation."""

    __slots__ = ()

    def _step(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class _ScheduleCall(ScheduleMarker):
    __slots__ = ("name", "args")

    def __init__(self, name: str, args: tuple[Any, ...]) -> None:
        self.name = name
        self.args = args

    def __repr__(self) -> str:
        return f"<erlang.schedule {self.name!r}>"


class SchedulePy(ScheduleMarker):
    """A continuation ``module.func(*args, **kwargs)``, run after one turn
    of the loop; an ``inline`` one (``erlang.schedule_inline``, in
    ``_compat``) at once, by :func:`follow_inline`."""

    __slots__ = ("module", "func", "args", "kwargs")

    #: continued at once, in the same loop iteration (:func:`follow_inline`)
    inline = False

    def __init__(self, module: str, func: str, args: list[Any],
                 kwargs: dict[str, Any]) -> None:
        self.module = module
        self.func = func
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"<erlang.schedule_py {self.module}.{self.func}>"

    def target(self) -> Callable[..., Any]:
        target: object = resolve(importlib.import_module(self.module), self.func)
        if not callable(target):
            raise TypeError(f"{self.module}.{self.func} is not callable")
        return target

    def step(self) -> Any:
        """Run the continuation: a value, an awaitable or another marker."""
        return self.target()(*self.args, **self.kwargs)


def schedule(name: str | Atom, *args: Any) -> ScheduleMarker:
    """Return a marker that, returned from a task's function, makes the task
    continue as ``erlang.call(name, *args)``: the Erlang callback's result
    becomes the task's result. The loop is not held while Erlang works."""
    return _ScheduleCall(check_name(name, "callback"), args)


def schedule_py(module: str, func: str, args: list[Any] | tuple[Any, ...] | None = None,
                kwargs: dict[str, Any] | None = None) -> ScheduleMarker:
    """Return a marker that, returned from a task's function, makes the task
    continue with ``module.func(*args, **kwargs)`` after yielding to the
    event loop once (other callbacks and tasks run in between). That call
    may return another marker, a value, or an awaitable."""
    if not isinstance(module, str) or not isinstance(func, str):
        raise TypeError("schedule_py(module, func, ...) takes names as str")
    return SchedulePy(module, func, list(args or ()), dict(kwargs or {}))


async def run_marker(marker: ScheduleMarker) -> Any:
    """Follow ``marker`` (and the markers its continuations return) to a value."""
    value: Any = marker
    while isinstance(value, ScheduleMarker):
        if isinstance(value, _ScheduleCall):
            value = await async_call(value.name, *value.args)
        elif isinstance(value, SchedulePy):
            await asyncio.sleep(0)
            reset_time_slice()
            value = value.step()
            if inspect.isawaitable(value):
                value = await value
        else:  # pragma: no cover - no other marker kinds
            raise TypeError(f"unknown schedule marker {value!r}")
    return value


def is_marker(value: object) -> bool:
    return isinstance(value, ScheduleMarker)


def follow_inline(value: Any, seconds: float | None) -> Any:
    """Run the inline continuations that ``value`` starts, until a value or
    another kind of marker; with the watchdog armed for the task's
    ``seconds`` left, as for its first step."""
    if not (isinstance(value, SchedulePy) and value.inline):
        return value
    token = _pyport.arm_deadline(max(seconds, 0.0)) if seconds is not None else None
    try:
        while isinstance(value, SchedulePy) and value.inline:
            value = value.step()
        return value
    finally:
        if token is not None:
            _pyport.disarm_deadline(token)


def reset_time_slice() -> None:
    """Start a new time slice (the port does this at each task start and
    after each loop iteration)."""
    _context.time_slice().reset()


def consume_time_slice(percent: int) -> bool:
    """Report that recent work used ``percent`` (1-100) of a time slice;
    ``True`` once the reports since the slice began reach 100, i.e. when
    long synchronous work should yield (return :func:`schedule_py`, or
    ``await asyncio.sleep(0)`` in a coroutine). A slice begins with each
    task the port starts, each continuation and each loop iteration; a
    ``True`` answer also starts a new one."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise ValueError(f"percent must be an int from 1 to 100, not {percent!r}")
    return _context.time_slice().consume(percent)
