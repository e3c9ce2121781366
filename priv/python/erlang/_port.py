"""Port mode: serve Erlang's task packets on fds 3/4 from an ErlangEventLoop.

``pyport port ...`` runs ``erlang._main.main``, which serves with a
:class:`PortServer`. The server reads messages from ``_pyport.Channel``
(fd 3) as a loop reader, runs each task as a plain call or an asyncio Task,
and queues replies on the channel; the loop's iteration hook flushes them to
fd 4 once per loop iteration with non-blocking writes.

The messages, their replies and the task options (``deadline_ms``,
``caller``, ``reply``) are described in docs/protocol.md; ``erlang._wire``
builds and names them.

Backpressure: when more than ``high_water`` bytes (8 MiB) are queued for
Erlang, the server stops reading fd 3 until the queue is under ``low_water``
(1 MiB). While anything is queued, fd 4 is watched for writability, so the
queue drains even when the loop has nothing else to do.

Task code is untrusted (docs/DESIGN.md, "The trust boundary"): whatever a
task raises, ``BaseException`` subclasses included, is that task's error;
``loop.stop()``/``loop.close()`` from a task raise ``RuntimeError``; a stray
SIGINT is logged, not obeyed; and a child forked by a task never serves the
parent's channel (the at-fork hook below).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import importlib
import inspect
import os
import platform
import select
import signal
import sys
import threading
import time
import weakref
from types import ModuleType
from typing import Any, Callable

from . import _context, _ops
from ._actor import Actors
from ._api import detect_mode
from ._compat import follow_inline
from ._handles import HandleInTerm, HandleLimitError, HandleTable, StaleHandleError
from ._interop import Bridge, current_caller, resolve
from ._native import _pyport
from ._schedule import is_marker, run_marker
from ._stream import Streams
from ._types import Pid
from ._wire import (
    ACTOR_MSG,
    ACTOR_START,
    CALL_REPLY,
    CANCEL,
    CANCELLED_REASON,
    EVAL,
    EXEC,
    HANDLE_LIMIT,
    INFINITY,
    OBJ_RELEASE,
    OPT_CALLER,
    OPT_DEADLINE,
    OPT_HANDLE_ARGS,
    OPT_LOCALS,
    OPT_NONE_ATOM,
    OPT_REPLY,
    OPT_RESULT,
    REASONS,
    SETUP,
    SETUP_HANDLE_INCARNATION,
    SETUP_HANDLE_MAX,
    SETUP_LOOP,
    LOG_LEVEL,
    STALE_HANDLE,
    STOP,
    STREAM_CANCEL,
    STREAM_CREDIT,
    STREAM_START,
    TASK,
    TIMEOUT_REASON,
    exception_name,
    log,
    python_error,
    ready,
    result_error,
    result_handles,
    start_failed,
    unknown_message,
)

__all__ = ["PortServer", "HIGH_WATER", "LOW_WATER"]

HIGH_WATER = 8 << 20
LOW_WATER = 1 << 20
#: seconds granted at shutdown to cancelled tasks, to the executor and to
#: the last replies still queued for Erlang
SHUTDOWN_GRACE = 5.0

#: Results that are certainly not awaitable: skips ``inspect.isawaitable``
#: (an ABC check) on the hot path of plain functions.
_PLAIN_RESULTS = frozenset({type(None), bool, int, float, str, bytes, list, tuple, dict})


class _Job:
    """A task the server runs as an asyncio Task (it may be cancelled)."""

    __slots__ = ("id", "label", "reply", "task", "timer", "reason", "mode", "none_atom")

    def __init__(self, id: Any, label: str, reply: bool, task: asyncio.Future[Any]) -> None:
        self.id = id
        self.label = label
        self.reply = reply
        self.task = task
        self.timer: asyncio.TimerHandle | None = None
        # Why the server cancelled the task: "cancelled" or "timeout".
        self.reason: str | None = None
        # The task's `result` option (handle | auto), None for a term.
        self.mode: str | None = None
        # The task's `none_atom` option, None for the port's default.
        self.none_atom: str | None = None


class _OptionError(TypeError):
    pass


def _call_with_deadline(func: Callable[..., Any], args: Any, kwargs: dict[str, Any],
                        seconds: float) -> Any:
    """``func(*args, **kwargs)`` with the watchdog armed: still running
    after ``seconds``, it gets ``_pyport.TaskDeadline`` raised in its frame
    (a coroutine function only builds its coroutine here, well within)."""
    token = _pyport.arm_deadline(seconds)
    try:
        return func(*args, **kwargs)
    finally:
        _pyport.disarm_deadline(token)


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
_serving: weakref.WeakSet[PortServer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for server in list(_serving):
        server.abandon_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class PortServer:
    """Runs Erlang's tasks on ``loop``, talking through ``channel``.

    ``channel`` is a ``_pyport.Channel`` (or anything with the same methods:
    ``fd_in``, ``fd_out``, ``read``, ``send``, ``send_result``, ``flush``,
    ``pending``). :meth:`serve_forever` runs the loop until ``stop`` or EOF.
    The server is the :class:`~erlang._link.ServerLink` of its bridge, and
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
        self._jobs: dict[Any, _Job] = {}
        self._modules: dict[str, ModuleType] = {}
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
        self.handles = HandleTable()
        self.actors = Actors(self)
        # Generators streamed to Erlang (docs/streams.md).
        self.streams = Streams(self)
        self.context = _context.PortContext(loop, self.bridge)
        self._time_slice = self.context.time_slice

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
        for job in self._jobs.values():
            done = job.task
            if done.done() and not done.cancelled() and done.exception() is exc:
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
            for job in self._jobs.values():
                job.reply = False
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
        self._time_slice.used = 0
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
        """Handle one message as ``Channel.read()`` returns it."""
        if isinstance(message, tuple) and message:
            tag, size = message[0], len(message)
            if tag == TASK and size == 7:
                self._run_task(*message[1:])
                return
            if tag == CANCEL and size == 2:
                self._cancel(message[1])
                return
            if (tag == EXEC or tag == EVAL) and size in (3, 4):
                self._source(message[1], tag, message[2],
                             message[3] if size == 4 else None)
                return
            if tag == CALL_REPLY and size == 3:
                self.bridge.on_reply(message[1], message[2])
                return
            if tag == SETUP and size == 2:
                self.bridge.setup(message[1])
                self._setup_handles(message[1])
                return
            if tag == OBJ_RELEASE and size == 2:
                self.handles.release(message[1])
                return
            if tag == STOP and size == 1:
                self.stop()
                return
            if tag == ACTOR_MSG and size == 3:
                self.actors.deliver(message[1], message[2])
                return
            if tag == ACTOR_MSG and size == 4:  # its message had no Python form
                self.actors.drop(message[1], str(message[3]))
                return
            if tag == ACTOR_START and size == 7:
                self.actors.start(*message[1:])
                return
            if tag == STREAM_START and size == 7:
                self.streams.start(*message[1:])
                return
            if tag == STREAM_CREDIT and size == 3:
                self.streams.credit(message[1], message[2])
                return
            if tag == STREAM_CANCEL and size == 2:
                self.streams.cancel(message[1])
                return
            if tag == LOG_LEVEL and size == 2:
                problem = _ops.set_log_level(message[1])
                if problem is not None:
                    self.log("warning", problem)
                return
        self.send(unknown_message(message))

    # -- output ------------------------------------------------------------

    def send(self, term: Any) -> None:
        """Queue ``term`` for Erlang; one that cannot be encoded is logged."""
        try:
            self.channel.send(term)
        except (TypeError, ValueError) as exc:
            self.log("error", f"pyport: could not encode {term!r}: {exc}")

    def _reply_error(self, id: Any, reason: Any) -> None:
        self.send(result_error(id, reason))

    def _reply_ok(self, id: Any, value: Any, mode: str | None = None,
                  none_atom: str | None = None) -> None:
        try:
            if none_atom is not None and mode is None:
                self.channel.send_result(id, value, none_atom)
                return
            if mode is None:
                self.channel.send_result(id, value)
                return
            if mode == "auto":
                try:
                    self.channel.send_result(id, value)
                    return
                except TypeError:
                    pass  # parts without a term form: kept as handles
            self._reply_handles(id, value, mode)
        except HandleInTerm:
            # erlang.handle(...) somewhere in the result (docs/handles.md).
            self._reply_handles(id, value, mode)
        except BaseException as exc:  # unconvertible (TypeError), too deep, or
            # whatever the result's own conversion hooks raise
            self._reply_error(id, python_error(exc, with_traceback=False))

    def _reply_handles(self, id: Any, value: Any, mode: str | None) -> None:
        """``{result, Id, {handles, Value, Ns}}``: ``value`` (or its parts)
        kept in the handle table; Erlang builds the handle terms."""
        try:
            tagged, numbers, created = self.handles.tagged(value, mode)
        except HandleLimitError:
            self._reply_error(id, (HANDLE_LIMIT, self.handles.max_handles))
            return
        except BaseException as exc:  # a part's own conversion hook raised
            self._reply_error(id, python_error(exc, with_traceback=False))
            return
        try:
            self.channel.send(result_handles(id, tagged, numbers))
        except BaseException as exc:  # the converted parts may still fail
            # Only what this reply stored: a handle sent again is another
            # owner's (docs/handles.md).
            self.handles.release(created)
            self._reply_error(id, python_error(exc, with_traceback=False))

    def _setup_handles(self, info: Any) -> None:
        if isinstance(info, dict):
            self.handles.setup(info.get(SETUP_LOOP), info.get(SETUP_HANDLE_INCARNATION),
                               info.get(SETUP_HANDLE_MAX))

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

    def _fail(self, id: Any, reply: bool, label: str, exc: BaseException) -> None:
        error = python_error(exc)
        if reply:
            self._reply_error(id, error)
        else:
            _, name, message, tb = error
            self.log("error", f"task {label} failed: {name}: {message}\n{tb}")

    # -- tasks -------------------------------------------------------------

    def adopt(self, id: Any, label: str, task: asyncio.Task[Any]) -> None:
        """Track ``task`` (an actor's) as Erlang's task ``id``: its end is
        replied, and ``{cancel, Id}`` cancels it."""
        job = _Job(id, label, True, task)
        self._jobs[id] = job
        task.add_done_callback(functools.partial(self._task_done, job))

    def lookup(self, module_name: Any, func_name: Any) -> Callable[..., Any]:
        """``module.func`` as a task names it (the actors' and streams'
        way in)."""
        return self._lookup(module_name, func_name)

    def _lookup(self, module_name: Any, func_name: Any) -> Callable[..., Any]:
        if not isinstance(module_name, str):
            raise TypeError(f"module name must be a string, not {type(module_name).__name__}")
        if not isinstance(func_name, str):
            raise TypeError(f"function name must be a string, not {type(func_name).__name__}")
        module = self._modules.get(module_name)
        if module is None:
            module = importlib.import_module(module_name)
            self._modules[module_name] = module
        # A dotted name reaches into the module: 'path.join' on os, 'Cls.meth'.
        target: object = (resolve(module, func_name) if "." in func_name
                          else getattr(module, func_name))
        if not callable(target):
            raise TypeError(f"{module_name}.{func_name} is not callable "
                            f"({type(target).__name__})")
        return target

    @staticmethod
    def _options(opts: Any) -> tuple[bool, float | None]:
        """``(reply, deadline_seconds)`` from a task's options map."""
        if opts is None:
            return True, None
        if not isinstance(opts, dict):
            raise _OptionError(f"task options must be a map, not {type(opts).__name__}")
        reply = opts.get(OPT_REPLY, True) is not False
        deadline = opts.get(OPT_DEADLINE)
        if deadline is None or deadline == INFINITY:
            return reply, None
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
            raise _OptionError(f"deadline_ms must be a number of milliseconds, "
                               f"not {deadline!r}")
        return reply, max(deadline, 0) / 1000.0

    def _run_task(self, id: Any, module_name: Any, func_name: Any,
                  args: Any, kwargs: Any, opts: Any) -> None:
        label = f"{module_name}.{func_name}"
        mode: str | None = None
        none_atom: str | None = None
        if not opts:
            # The common case (create_task/await): no deadline, a reply.
            reply, deadline = True, None
        else:
            try:
                reply, deadline = self._options(opts)
            except _OptionError as exc:
                self._reply_error(id, python_error(TypeError(str(exc)), with_traceback=False))
                return
            mode = opts.get(OPT_RESULT)
            if mode not in ("handle", "auto"):
                mode = None
            none_atom = opts.get(OPT_NONE_ATOM)
            if not isinstance(none_atom, str):
                none_atom = None
            if opts.get(OPT_HANDLE_ARGS) is True:
                try:
                    args = self.handles.resolve(args)
                    if kwargs:
                        kwargs = self.handles.resolve(kwargs)
                except StaleHandleError:
                    self._reply_error(id, STALE_HANDLE)
                    return
        caller = opts.get(OPT_CALLER) if isinstance(opts, dict) else None
        token = current_caller.set(caller if isinstance(caller, Pid) else None)
        bridge = self.bridge
        frame = bridge.enter_frame(
            id, None if deadline is None else self.loop.time() + deadline)
        self._time_slice.used = 0
        try:
            func = self._lookup(module_name, func_name)
            if not isinstance(args, (list, tuple)):
                raise TypeError(f"task arguments must be a list, not {type(args).__name__}")
            if kwargs is None:
                kwargs = {}
            elif not isinstance(kwargs, dict):
                raise TypeError(f"task kwargs must be a map, not {type(kwargs).__name__}")
            if deadline is None:
                result = func(*args, **kwargs)
            else:
                result = _call_with_deadline(func, args, kwargs, deadline)
            if is_marker(result):
                # erlang.schedule_inline(): continue here and now.
                result = follow_inline(result, None if frame.deadline is None
                                       else frame.deadline - self.loop.time())
            if is_marker(result):
                # erlang.schedule()/schedule_py(): continue as a Task.
                result = run_marker(result)
            if type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    task = self.loop.create_task(result, name=f"pyport:{label}")
                else:
                    task = asyncio.ensure_future(result, loop=self.loop)
            else:
                if reply:
                    self._reply_ok(id, result, mode, none_atom)
                return
        except asyncio.CancelledError:
            # Cancelled (or timed out) while waiting in a blocking Erlang call.
            reason = frame.reason or CANCELLED_REASON
            if reply:
                self._reply_error(id, REASONS[reason])
            elif reason == TIMEOUT_REASON:
                self.log("error", f"task {label} timed out")
            return
        except _pyport.TaskDeadline:
            # A plain function still running at its deadline, interrupted
            # by the watchdog: it alone times out, the loop goes on.
            if reply:
                self._reply_error(id, REASONS[TIMEOUT_REASON])
            else:
                self.log("error", f"task {label} timed out")
            return
        except BaseException as exc:
            # SystemExit, KeyboardInterrupt, GeneratorExit and the like
            # too: the task's error, never the port's end.
            self._fail(id, reply, label, exc)
            return
        finally:
            bridge.leave_frame(frame)
            current_caller.reset(token)
        job = _Job(id, label, reply, task)
        job.mode = mode
        job.none_atom = none_atom
        self._jobs[id] = job
        if deadline is not None:
            job.timer = self.loop.call_later(deadline, self._expire, job)
        task.add_done_callback(functools.partial(self._task_done, job))

    def _expire(self, job: _Job) -> None:
        job.timer = None
        if not job.task.done():
            job.reason = TIMEOUT_REASON
            job.task.cancel(msg="pyport: deadline_ms passed")

    def _cancel(self, id: Any) -> None:
        if self.streams.cancel(id):
            return  # a stream whose consumer died (the worker cancels it)
        job = self._jobs.get(id)
        if job is None:
            # A plain function still running can only be waiting in a
            # blocking Erlang call: make that call give up.
            self.bridge.cancel_frame(id, CANCELLED_REASON)
            return
        if job.task.done():
            return  # finished already (its reply is queued or sent)
        job.reason = CANCELLED_REASON
        job.task.cancel(msg="pyport: cancelled by Erlang")

    def _task_done(self, job: _Job, task: asyncio.Future[Any]) -> None:
        if self._jobs.get(job.id) is job:
            del self._jobs[job.id]
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        if job.reason is not None or task.cancelled():
            # A cancel we asked for wins even if the task swallowed it.
            reason = job.reason or CANCELLED_REASON
            if not task.cancelled():
                task.exception()  # mark it retrieved: no "never retrieved" log
            if job.reply:
                self._reply_error(job.id, REASONS[reason])
            elif reason == TIMEOUT_REASON:
                self.log("error", f"task {job.label} timed out")
            return
        exc = task.exception()
        if exc is not None:
            self._fail(job.id, job.reply, job.label, exc)
        elif job.reply:
            self._reply_ok(job.id, task.result(), job.mode, job.none_atom)

    # -- exec / eval ------------------------------------------------------------

    @staticmethod
    def _main_namespace() -> dict[str, Any]:
        main = sys.modules.get("__main__")
        if main is None:  # pragma: no cover - the interpreter always has one
            main = ModuleType("__main__")
            sys.modules["__main__"] = main
        return main.__dict__

    def _source(self, id: Any, kind: str, text: Any, opts: Any = None) -> None:
        caller = opts.get(OPT_CALLER) if isinstance(opts, dict) else None
        token = current_caller.set(caller if isinstance(caller, Pid) else None)
        frame = self.bridge.enter_frame(id, None)
        none_atom: str | None = None
        try:
            if not isinstance(text, str):
                raise TypeError(f"{kind} source must be a string, not {type(text).__name__}")
            code = compile(text, f"<erlang {kind}>", kind)
            if isinstance(opts, dict) and (OPT_LOCALS in opts or OPT_NONE_ATOM in opts):
                # py:eval/2,3 and eval/3's `locals` (docs/porting.md).
                none_atom = opts.get(OPT_NONE_ATOM)
                if not isinstance(none_atom, str):
                    none_atom = None
                value = eval(code, self._main_namespace(), _locals(opts.get(OPT_LOCALS)))
            else:
                value = eval(code, self._main_namespace())
        except asyncio.CancelledError:
            self._reply_error(id, REASONS[frame.reason or CANCELLED_REASON])
            return
        except BaseException as exc:  # as for tasks: the caller's error
            self._fail(id, True, kind, exc)
            return
        finally:
            self.bridge.leave_frame(frame)
            current_caller.reset(token)
        self._reply_ok(id, None if kind == EXEC else value, None, none_atom)



def _locals(bindings: Any) -> dict[str, Any]:
    """The local namespace of an eval with bindings: names as str."""
    if bindings is None:
        return {}
    if not isinstance(bindings, dict):
        raise TypeError(f"eval locals must be a map, not {type(bindings).__name__}")
    out: dict[str, Any] = {}
    for key, value in bindings.items():
        if not isinstance(key, str):
            raise TypeError(f"eval locals: names must be atoms or binaries, not {key!r}")
        out[key] = value
    return out
