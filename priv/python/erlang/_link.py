"""What the interop :class:`~erlang._interop.Bridge` needs from the port server.

The bridge queues requests for Erlang and, while a blocking ``erlang.call``
waits, keeps the server's input flowing; :class:`ServerLink` is that
interface, which :class:`erlang._server.core.ServerCore` implements. It
keeps the bridge free of the server's internals and of an import of
``_server``. :class:`Waiter` is what such a wait waits for.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

__all__ = ["ServerLink", "Waiter"]


class Waiter:
    """What a nested wait (``Bridge.wait``) waits for: ``done`` set, with
    ``reply``, by whoever answers (a ``call_reply``, a finished task)."""

    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = False
        self.reply: Any = None


class ServerLink(Protocol):
    """The port server, as the bridge and the log handler see it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def stopping(self) -> bool:
        """True once the server stops: no reply will come any more."""
        ...

    def on_loop_thread(self) -> bool:
        """True in the thread that runs the server's loop."""
        ...

    def queue(self, term: Any) -> None:
        """Queue ``term`` for Erlang; ``TypeError``/``ValueError`` when it
        cannot be encoded (nothing is queued then)."""
        ...

    def send(self, term: Any) -> None:
        """Queue ``term`` for Erlang; a term that cannot be encoded is
        logged instead. Loop thread only."""
        ...

    def log(self, level: str, message: str) -> None:
        """Send ``{log, Level, <<"erlang">>, Message}``."""
        ...

    def begin_wait(self) -> None:
        """A blocking call starts waiting: its reply comes on the input,
        which must be read whatever the backpressure."""
        ...

    def end_wait(self) -> None:
        """The blocking call that began last stopped waiting."""
        ...

    def dispatch_pending(self) -> None:
        """Dispatch the messages read and not yet dispatched, in order."""
        ...

    def flush(self) -> None:
        """Write what is queued for Erlang, as far as the output takes it."""
        ...
