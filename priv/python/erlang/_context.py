"""The state of the port this interpreter serves, in one object.

:class:`PortContext` holds what module-level functions (``erlang.call``,
``erlang.spawn_task`` from a thread, ``erlang.consume_time_slice``) need to
reach the running port: its loop, its :class:`~erlang._interop.Bridge` and
its time-slice accounting. The port server installs it when it starts and
clears it when it shuts down; outside port mode (``pyport run``) there is
none, and time slices are counted by a context-free :class:`TimeSlice`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ._interop import Bridge

__all__ = ["PortContext", "TimeSlice", "clear", "current", "install", "time_slice"]


class TimeSlice:
    """Percentages of a time slice reported by ``erlang.consume_time_slice``
    since the slice began."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = 0

    def reset(self) -> None:
        self.used = 0

    def consume(self, percent: int) -> bool:
        """Add ``percent``; True (and a new slice) once 100 is reached."""
        self.used += percent
        if self.used >= 100:
            self.used = 0
            return True
        return False


class PortContext:
    """The running port: its loop, its bridge to Erlang, its time slice."""

    __slots__ = ("loop", "bridge", "time_slice")

    def __init__(self, loop: asyncio.AbstractEventLoop, bridge: Bridge) -> None:
        self.loop = loop
        self.bridge = bridge
        self.time_slice = TimeSlice()


_current: PortContext | None = None
# Accounting for code that runs without a port (standalone, unit tests).
_standalone_slice = TimeSlice()


def install(context: PortContext) -> None:
    """Make ``context`` the running port's (one port serves per interpreter;
    a server started later takes over)."""
    global _current
    _current = context


def clear(context: PortContext) -> None:
    """Remove ``context`` if it is the installed one (a server that shuts
    down does not clear the context of one that took over)."""
    global _current
    if _current is context:
        _current = None


def current() -> PortContext | None:
    """The running port's context, or ``None`` outside port mode."""
    return _current


def time_slice() -> TimeSlice:
    """The time slice ``consume_time_slice`` counts against now."""
    context = _current
    return _standalone_slice if context is None else context.time_slice
