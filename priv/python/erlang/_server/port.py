"""The port server: the core (``erlang._server.core``) with every feature
registered on it. One message kind, one handler:

=================================  ==========================================
``task``, ``cancel``               ``erlang._server.tasks`` (``cancel`` of a
                                   stream's id: the stream)
``exec``, ``eval``                 ``erlang._server.sources``
``stream_*``                       ``erlang._server.streams`` -> ``_stream``
``actor_start``, ``actor_msg``     ``erlang._server.actors`` -> ``_actor``
``obj_release``                    ``erlang._server.handles`` -> ``_handles``
``setup``                          the bridge and the handle table
``call_reply``                     the bridge (``erlang._interop``)
``log_level``                      ``erlang._ops``
``stop``                           the core
=================================  ==========================================

``{ready, Info}`` and every reply are described in docs/protocol.md;
``erlang._wire`` builds and names them.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from .. import _ops
from .._actor import Actors
from .._handles import HandleTable
from .._stream import Streams
from .._wire import CALL_REPLY, CANCEL, EVAL, EXEC, LOG_LEVEL, SETUP, TASK
from . import actors, handles, streams
from .core import HIGH_WATER, LOW_WATER, ServerCore
from .replies import Replies
from .sources import Sources
from .tasks import Tasks

__all__ = ["HIGH_WATER", "LOW_WATER", "PortServer"]


class PortServer(ServerCore):
    """Runs Erlang's tasks, exec/eval, streams and actors on ``loop``,
    talking through ``channel`` (see :class:`~erlang._server.core.ServerCore`
    for the arguments). It is the host the streams and actors see."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        channel: Any,
        *,
        high_water: int = HIGH_WATER,
        low_water: int = LOW_WATER,
        child_closes: tuple[int, ...] = (),
    ) -> None:
        super().__init__(loop, channel, high_water=high_water, low_water=low_water,
                         child_closes=child_closes)
        self.handles = HandleTable()
        self.replies = Replies(self, self.handles)
        self.tasks = Tasks(self, self.replies, self.handles)
        self.sources = Sources(self, self.replies)
        self.actors = Actors(self)
        # Generators streamed to Erlang (docs/streams.md).
        self.streams = Streams(self)
        self.register(TASK, 7, self.tasks.run)
        self.register(CANCEL, 2, self._cancel)
        for size in (3, 4):
            self.register(EXEC, size, self._source(EXEC))
            self.register(EVAL, size, self._source(EVAL))
        self.register(CALL_REPLY, 3, self.bridge.on_reply)
        self.register(SETUP, 2, self._setup)
        self.register(LOG_LEVEL, 2, self._log_level)
        handles.serve(self, self.handles)
        streams.serve(self, self.streams)
        actors.serve(self, self.actors)
        self.carries_errors(self.tasks.carries)
        self.on_unasked_stop(self.tasks.unasked_stop)

    # -- the host of streams and actors ------------------------------------------

    def lookup(self, module_name: Any, func_name: Any) -> Callable[..., Any]:
        """``module.func`` as a task names it."""
        return self.tasks.lookup(module_name, func_name)

    def adopt(self, id: Any, label: str, task: asyncio.Task[Any]) -> None:
        """Track ``task`` (an actor's) as Erlang's task ``id``."""
        self.tasks.adopt(id, label, task)

    # -- messages that concern more than one feature -----------------------------

    def _cancel(self, id: Any) -> None:
        if not self.streams.cancel(id):  # a stream whose consumer died
            self.tasks.cancel(id)

    def _source(self, kind: str) -> Callable[..., None]:
        def run(id: Any, text: Any, opts: Any = None) -> None:
            self.sources.run(kind, id, text, opts)
        return run

    def _setup(self, info: Any) -> None:
        self.bridge.setup(info)
        handles.setup(self.handles, info)

    def _log_level(self, level: Any) -> None:
        problem = _ops.set_log_level(level)
        if problem is not None:
            self.log("warning", problem)
