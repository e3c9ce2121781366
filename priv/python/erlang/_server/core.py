"""The port server's core: the channel to Erlang and the loop it runs on.

:class:`ServerCore` reads Erlang's messages from ``_pyport.Channel`` (fd 3)
as a loop reader and hands each to the handler registered for its tag and
size (:meth:`ServerCore.register`; the features in ``erlang._server`` do
the registering); it queues replies on the channel, and the loop's
iteration hook flushes them to fd 4 once per loop iteration with
non-blocking writes. It knows no message but its own ``stop``.

Backpressure: when more than ``high_water`` bytes (8 MiB) are queued for
Erlang, the server stops reading fd 3 until the queue is under ``low_water``
(1 MiB). While anything is queued, fd 4 is watched for writability, so the
queue drains even when the loop has nothing else to do.

Task code is untrusted (docs/DESIGN.md, "The trust boundary"):
``loop.stop()``/``loop.close()`` from a task raise ``RuntimeError``; a stray
SIGINT is logged, not obeyed; and a child forked by a task never serves the
parent's channel (the at-fork hook below).
"""

from __future__ import annotations

import asyncio
import collections
import os
import platform
import select
import signal
import sys
import threading
import time
import weakref
from typing import Any, Callable

from .. import _context, _ops
from .._api import detect_mode
from .._interop import Bridge
from .._wire import STOP, exception_name, log, ready, start_failed, unknown_message

__all__ = ["HIGH_WATER", "LOW_WATER", "SHUTDOWN_GRACE", "Handler", "ServerCore"]

HIGH_WATER = 8 << 20
LOW_WATER = 1 << 20
#: seconds granted at shutdown to cancelled tasks, to the executor and to
#: the last replies still queued for Erlang
SHUTDOWN_GRACE = 5.0

#: what handles a message: called with the message's fields after its tag
#: (what it returns is ignored)
Handler = Callable[..., object]


class _ChildChannel:
    """The channel of a forked child: it belongs to the parent, so the child
    queues nothing and writes nothing (its logging included)."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self.fd_in = fd_in
        self.fd_out = fd_out

    def read(self) -> None:
        return None

    def send(self, term: Any) -> None:
        pass

    def send_result(self, id: Any, value: Any) -> None:
        pass

    def flush(self) -> int:
        return 0

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        pass


#: servers whose loop is running: the at-fork hook detaches them in a child
_serving: weakref.WeakSet[ServerCore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for server in list(_serving):
        server.abandon_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ServerCore:
    """Serves Erlang's messages on ``loop``, talking through ``channel``.

    ``channel`` is a ``_pyport.Channel`` (or anything with the same methods:
    ``fd_in``, ``fd_out``, ``read``, ``send``, ``send_result``, ``flush``,
    ``pending``). :meth:`serve_forever` runs the loop until ``stop`` or EOF.
    The core is the :class:`~erlang._link.ServerLink` of its bridge, and
    the :class:`~erlang._loop.LoopOwner` of an ``ErlangEventLoop``.
    ``child_closes`` are descriptors a forked child closes besides the
    channel's own (the ones the channel was made from, in port mode).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        channel: Any,
        *,
        high_water: int = HIGH_WATER,
        low_water: int = LOW_WATER,
        child_closes: tuple[int, ...] = (),
    ) -> None:
        if not 0 <= low_water <= high_water:
            raise ValueError("need 0 <= low_water <= high_water")
        self.loop = loop
        self.channel = channel
        self.high_water = high_water
        self.low_water = low_water
        self._fd_in: int = channel.fd_in
        self._fd_out: int = channel.fd_out
        self._handlers: dict[tuple[str, int], Handler] = {}
        #: whether an exception that left a callback is some task's error
        #: already (:meth:`escaped`), asked of each feature that keeps tasks
        self._carriers: list[Callable[[BaseException], bool]] = []
        #: told when the loop ended without Erlang asking (a bug of the port)
        self._unasked_stop: list[Callable[[], None]] = []
        self._reading = False
        self._writing = False
        self._started = False
        self._stopping = False
        self._output_broken = False
        self._child_closes = child_closes
        self._sigint_handled = False
        self._loop_thread: int | None = None
        # Messages read from fd 3 and not dispatched yet. Shared by every
        # level of nested waits (erlang.call), so that order is kept.
        self._inbox: collections.deque[Any] = collections.deque()
        # Blocking Erlang calls waiting right now (they need fd 3 read).
        self._waiting = 0
        self.bridge = Bridge(self)
        self.context = _context.PortContext(loop, self.bridge)
        self.register(STOP, 1, self.stop)

    # -- the handler table ---------------------------------------------------

    def register(self, tag: str, size: int, handler: Handler) -> None:
        """Messages ``{Tag, ...}`` of ``size`` elements go to ``handler``,
        called with the elements after the tag."""
        key = (tag, size)
        if key in self._handlers:
            raise ValueError(f"a handler for {tag} of size {size} is registered already")
        self._handlers[key] = handler

    def carries_errors(self, check: Callable[[BaseException], bool]) -> None:
        """``check(exc)`` says whether a task already has ``exc`` as its error."""
        self._carriers.append(check)

    def on_unasked_stop(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs when the loop ends without Erlang's ``stop``."""
        self._unasked_stop.append(callback)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Send ``{ready, Info}``, watch fd 3, install the flush hook and
        make this the running port (``erlang._context``)."""
        if self._started:
            raise RuntimeError("PortServer already started")
        self._started = True
        self._loop_thread = threading.get_ident()
        self.channel.send(ready(detect_mode().value, platform.python_version(),
                                os.getpid(), _ops.interpreter_info()))
        self.loop._iteration_hook = self._after_iteration  # type: ignore[attr-defined]
        if hasattr(self.loop, "_owner"):  # an ErlangEventLoop
            self.loop._owner = self
        self._handle_sigint()
        _serving.add(self)
        self._resume_reading()
        _context.install(self.context)
        # The first iteration may wait for input indefinitely: write (or
        # watch fd 4 for) {ready, Info} now rather than after it.
        self.flush()

    def serve_forever(self) -> int:
        """Start, run the loop until ``stop``/EOF, shut down; return 0."""
        self.start()
        try:
            self.loop.run_forever()
        finally:
            self._shutdown()
        return 0

    def _handle_sigint(self) -> None:
        """Log a stray SIGINT instead of letting it end the port.

        An embedded interpreter installs no SIGINT handler, so the default
        action would kill the port and fail every task on the loop; the port
        is stopped by Erlang. A task may still handle SIGINT itself with
        ``loop.add_signal_handler``, which replaces this. Only the main
        thread can install signal handlers (tests serve from others).
        """
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            self.loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        except (NotImplementedError, RuntimeError, ValueError) as exc:
            self.log("warning", f"cannot handle SIGINT in the port: {exc}")
            return
        self._sigint_handled = True

    def signal_handler_removed(self, sig: int) -> None:
        """A task removed its own SIGINT handler: put the port's back, rather
        than the default one that raises KeyboardInterrupt anywhere."""
        if sig == signal.SIGINT and self._sigint_handled:
            self.loop.add_signal_handler(signal.SIGINT, self._on_sigint)

    def _on_sigint(self) -> None:
        self.log("warning", "SIGINT ignored: the port is stopped by Erlang "
                            "(a task may handle SIGINT with loop.add_signal_handler)")

    def escaped(self, exc: BaseException) -> None:
        """The loop's :class:`~erlang._loop.LoopOwner` hook: ``SystemExit``
        or ``KeyboardInterrupt`` left a callback. A Task has recorded it as
        its exception already; the loop goes on. The task's caller gets it
        as the task's error, so only what no task of Erlang's carries (a
        callback, a task Python code created) is logged."""
        if any(carries(exc) for carries in self._carriers):
            return
        self.log("warning", f"{exception_name(exc)} raised in a task or callback "
                            "ended only that task or callback; the port goes on")

    def abandon_in_child(self) -> None:
        """In a child forked while this server served: the channel is the
        parent's, so close the child's copies of its descriptors, write
        nothing, and end the child should it come back to the loop."""
        self._stopping = True
        self._output_broken = True
        self._reading = self._writing = False
        self._inbox.clear()
        channel, self.channel = self.channel, _ChildChannel(self._fd_in, self._fd_out)
        try:
            channel.close()
        except Exception:  # a test double without close: nothing to release
            pass
        for fd in self._child_closes:
            try:
                os.close(fd)
            except OSError:
                pass
        _context.clear(self.context)
        abandon = getattr(self.loop, "abandon_in_child", None)
        if abandon is not None:
            abandon()

    def stop(self) -> None:
        """Stop reading and make ``serve_forever`` return (from the loop thread)."""
        if self._stopping:
            return
        self._stopping = True
        self._pause_reading()
        self.loop.stop()

    def _shutdown(self) -> None:
        loop = self.loop
        if not self._stopping:
            # The loop ended without Erlang asking (a bug of the port): the
            # tasks cancelled below were not cancelled by anyone, so they
            # get no reply; Erlang fails their callers when the port exits.
            for callback in self._unasked_stop:
                callback()
        self._stopping = True
        _serving.discard(self)
        self._pause_reading()
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=SHUTDOWN_GRACE))
            loop.run_until_complete(loop.shutdown_asyncgens())
            try:
                loop.run_until_complete(
                    asyncio.wait_for(loop.shutdown_default_executor(), SHUTDOWN_GRACE)
                )
            except asyncio.TimeoutError:
                self.log("warning", "default executor did not stop in time")
        finally:
            self.drain(SHUTDOWN_GRACE)
            if self._writing:
                loop.remove_writer(self._fd_out)
                self._writing = False
            if getattr(loop, "_iteration_hook", None) == self._after_iteration:
                loop._iteration_hook = None  # type: ignore[attr-defined]
            _context.clear(self.context)
            loop.close()  # also removes the SIGINT handler
            if getattr(loop, "_owner", None) is self:
                loop._owner = None  # type: ignore[attr-defined]

    def drain(self, timeout: float) -> None:
        """Write what is queued, waiting for fd 4 at most ``timeout`` seconds."""
        if self._output_broken:
            return
        deadline = time.monotonic() + timeout
        try:
            while self.channel.flush() > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                select.select([], [self._fd_out], [], remaining)
        except OSError:
            self._output_broken = True

    # -- the bridge's link (ServerLink) ----------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def queue(self, term: Any) -> None:
        self.channel.send(term)

    def begin_wait(self) -> None:
        self._waiting += 1
        self._resume_reading()

    def end_wait(self) -> None:
        self._waiting -= 1

    # -- flow control ------------------------------------------------------

    def _resume_reading(self) -> None:
        if not self._reading and not self._stopping:
            self.loop.add_reader(self._fd_in, self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            self.loop.remove_reader(self._fd_in)
            self._reading = False

    def _after_iteration(self) -> None:
        """Iteration hook: flush the replies queued during this iteration."""
        self.context.time_slice.used = 0
        if self._output_broken or (not self._writing and self.channel.pending() == 0):
            return
        self.flush()

    def _on_writable(self) -> None:
        self.flush()

    def flush(self) -> None:
        try:
            left = self.channel.flush()
        except OSError as exc:
            # Erlang closed the port's output: nobody can hear us any more.
            self._output_broken = True
            print(f"pyport: output channel closed ({exc}); stopping", file=sys.stderr)
            if self._writing:
                self.loop.remove_writer(self._fd_out)
                self._writing = False
            self.stop()
            return
        if left > 0 and not self._writing:
            self.loop.add_writer(self._fd_out, self._on_writable)
            self._writing = True
        elif left == 0 and self._writing:
            self.loop.remove_writer(self._fd_out)
            self._writing = False
        if left > self.high_water and not self._waiting:
            # Not while a blocking call waits: its reply comes on fd 3.
            self._pause_reading()
        elif left < self.low_water:
            if self._inbox:
                # Messages read before the pause go first; reading resumes
                # once they are all dispatched, so input stays bounded too.
                self.loop.call_soon(self.dispatch_pending)
            else:
                self._resume_reading()

    # -- input -------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            messages = self.channel.read()
        except OSError as exc:
            print(f"pyport: reading the input channel failed ({exc}); stopping",
                  file=sys.stderr)
            self.stop()
            return
        if messages is None:  # EOF: the Erlang side closed the port
            self.stop()
            return
        self._inbox.extend(messages)
        self.dispatch_pending()

    def dispatch_pending(self) -> None:
        """Dispatch what was read, in order. A message whose handling waits
        in ``erlang.call`` lets nested levels dispatch the rest meanwhile."""
        inbox = self._inbox
        while inbox and not self._stopping:
            if self.channel.pending() > self.high_water and not self._waiting:
                # Backpressure: one read can bring thousands of tasks;
                # the rest waits until Erlang has read the backlog
                # (``flush`` drains it again under the low-water mark).
                self._pause_reading()
                return
            self.dispatch(inbox.popleft())
        if not inbox and self.channel.pending() < self.low_water:
            self._resume_reading()

    def dispatch(self, message: Any) -> None:
        """Handle one message as ``Channel.read()`` returns it: by the
        handler registered for its tag and size, else ``unknown_message``."""
        if isinstance(message, tuple) and message and isinstance(message[0], str):
            handler = self._handlers.get((message[0], len(message)))
            if handler is not None:
                handler(*message[1:])
                return
        self.send(unknown_message(message))

    # -- output ------------------------------------------------------------

    def send(self, term: Any) -> None:
        """Queue ``term`` for Erlang; one that cannot be encoded is logged."""
        try:
            self.channel.send(term)
        except (TypeError, ValueError) as exc:
            self.log("error", f"pyport: could not encode {term!r}: {exc}")

    def fail_start(self, reason: Any) -> None:
        """Tell Erlang the port cannot start (``{start_failed, Reason}``)
        instead of ``{ready, Info}``, and write it out."""
        self.send(start_failed(reason))
        self.drain(SHUTDOWN_GRACE)

    def log(self, level: str, message: str) -> None:
        """Send ``{log, Level, <<"erlang">>, Message}`` (an OTP level)."""
        try:
            self.channel.send(log(level, "erlang", message))
        except Exception as exc:  # pragma: no cover - strings always encode
            print(f"pyport: {message} ({exc})", file=sys.stderr)
