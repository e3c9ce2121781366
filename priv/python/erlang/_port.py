"""Port mode: serve Erlang's task packets on fds 3/4 from an ErlangEventLoop.

``pyport port [--max-packet BYTES] [--path DIR]...`` calls :func:`main`. The
:class:`PortServer` reads messages from ``_pyport.Channel`` (fd 3) as a loop
reader, runs each task as a plain call or an asyncio Task, and queues replies
on the channel; the loop's iteration hook flushes them to fd 4 once per loop
iteration with non-blocking writes.

Message handling (see docs/DESIGN.md and docs/architecture.md):

===========================================  ==========================================
message (as ``Channel.read()`` yields it)    effect
===========================================  ==========================================
``('task', Id, M, F, Args, Kwargs, Opts)``   ``M.F(*Args, **Kwargs)``; an awaitable result
                                             runs as a Task; reply ``{result, Id, _}``
``('cancel', Id)``                           ``Task.cancel()``; reply ``{error, cancelled}``
``('exec', Id, Code[, Opts])``               ``exec`` in ``__main__``; reply ``{ok, none}``
``('eval', Id, Expr[, Opts])``               ``eval`` in ``__main__``; reply ``{ok, Value}``
                                             (``Opts``: ``caller`` as for tasks)
``('call_reply', CallId, Reply)``            answer to ``erlang.call``/``async_call``/
                                             ``send``/``whereis`` (see ``_interop``)
``('setup', #{worker => Pid, loop => I})``   who ``erlang.self()`` is outside a task
``('stop',)`` or EOF                         cancel all tasks, flush, close the loop
anything else                                ``{error, {unknown_message, Msg}}``
===========================================  ==========================================

Task options: ``deadline_ms`` (number, or ``infinity``/``none``) cancels the
Task after that many milliseconds with reply ``{error, timeout}`` (a plain
function blocked in ``erlang.call`` stops waiting then too); ``caller``
(a pid) is what ``erlang.self()`` returns inside the task;
``reply => false`` sends nothing on success and reports a failure as
``{log, error, <<"erlang">>, Message}``.

Backpressure: when more than ``high_water`` bytes (8 MiB) are queued for
Erlang, the server stops reading fd 3 until the queue is under ``low_water``
(1 MiB). While anything is queued, fd 4 is watched for writability, so the
queue drains even when the loop has nothing else to do.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import importlib
import inspect
import logging
import os
import platform
import select
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Callable

from . import _env, _interop
from ._api import _set_port_loop, detect_mode, new_event_loop
from ._interop import current_caller
from ._logging import OutputForwarder, level_name, python_level
from ._native import _pyport
from ._types import Atom, Pid

__all__ = ["PortServer", "main", "DEFAULT_MAX_PACKET", "HIGH_WATER", "LOW_WATER"]

DEFAULT_MAX_PACKET = 64 << 20
HIGH_WATER = 8 << 20
LOW_WATER = 1 << 20
#: seconds granted at shutdown to cancelled tasks, to the executor and to
#: the last replies still queued for Erlang
SHUTDOWN_GRACE = 5.0

#: Results that are certainly not awaitable: skips ``inspect.isawaitable``
#: (an ABC check) on the hot path of plain functions.
_PLAIN_RESULTS = frozenset({type(None), bool, int, float, str, bytes, list, tuple, dict})

_RESULT = Atom("result")
_ERROR = Atom("error")
_PYTHON = Atom("python")
_LOG = Atom("log")
_TIMEOUT = "timeout"
_CANCELLED = "cancelled"


def _python_error(exc: BaseException, with_traceback: bool = True) -> tuple[Any, ...]:
    """``{python, Type, Message, Traceback}`` for an exception."""
    tb = "".join(traceback.format_exception(exc)) if with_traceback else ""
    return (_PYTHON, type(exc).__name__, str(exc), tb)


class _Job:
    """A task the server runs as an asyncio Task (it may be cancelled)."""

    __slots__ = ("id", "label", "reply", "task", "timer", "reason")

    def __init__(self, id: Any, label: str, reply: bool, task: asyncio.Future[Any]) -> None:
        self.id = id
        self.label = label
        self.reply = reply
        self.task = task
        self.timer: asyncio.TimerHandle | None = None
        # Why the server cancelled the task: "cancelled" or "timeout".
        self.reason: str | None = None


class _OptionError(TypeError):
    pass


class PortServer:
    """Runs Erlang's tasks on ``loop``, talking through ``channel``.

    ``channel`` is a ``_pyport.Channel`` (or anything with the same methods:
    ``fd_in``, ``fd_out``, ``read``, ``send``, ``send_result``, ``flush``,
    ``pending``). :meth:`serve_forever` runs the loop until ``stop`` or EOF.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        channel: Any,
        *,
        high_water: int = HIGH_WATER,
        low_water: int = LOW_WATER,
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
        self._loop_thread: int | None = None
        # Messages read from fd 3 and not dispatched yet. Shared by every
        # level of nested waits (erlang.call), so that order is kept.
        self._inbox: collections.deque[Any] = collections.deque()
        # Blocking Erlang calls waiting right now (they need fd 3 read).
        self._waiting = 0
        self.bridge = _interop.Bridge(self)

    # -- lifecycle -----------------------------------------------------------

    def ready_info(self) -> dict[Any, Any]:
        return {
            Atom("protocol"): 1,
            Atom("python"): platform.python_version(),
            Atom("os_pid"): os.getpid(),
            Atom("mode"): Atom(detect_mode().value),
        }

    def start(self) -> None:
        """Send ``{ready, Info}``, watch fd 3 and install the flush hook."""
        if self._started:
            raise RuntimeError("PortServer already started")
        self._started = True
        self._loop_thread = threading.get_ident()
        self.channel.send((Atom("ready"), self.ready_info()))
        self.loop._iteration_hook = self._after_iteration  # type: ignore[attr-defined]
        self._resume_reading()
        _set_port_loop(self.loop)
        _interop._set_bridge(self.bridge)
        # The first iteration may wait for input indefinitely: write (or
        # watch fd 4 for) {ready, Info} now rather than after it.
        self._flush()

    def serve_forever(self) -> int:
        """Start, run the loop until ``stop``/EOF, shut down; return 0."""
        self.start()
        try:
            self.loop.run_forever()
        finally:
            self._shutdown()
        return 0

    def stop(self) -> None:
        """Stop reading and make ``serve_forever`` return (from the loop thread)."""
        if self._stopping:
            return
        self._stopping = True
        self._pause_reading()
        self.loop.stop()

    def _shutdown(self) -> None:
        loop = self.loop
        self._stopping = True
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
                self._log("warning", "default executor did not stop in time")
        finally:
            self._drain(SHUTDOWN_GRACE)
            if self._writing:
                loop.remove_writer(self._fd_out)
                self._writing = False
            if getattr(loop, "_iteration_hook", None) == self._after_iteration:
                loop._iteration_hook = None  # type: ignore[attr-defined]
            _set_port_loop(None)
            _interop._set_bridge(None)
            loop.close()

    def _drain(self, timeout: float) -> None:
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
        _interop.reset_time_slice()
        if self._output_broken or (not self._writing and self.channel.pending() == 0):
            return
        self._flush()

    def _on_writable(self) -> None:
        self._flush()

    def _flush(self) -> None:
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
                self.loop.call_soon(self._drain_inbox)
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
        self._drain_inbox()

    def _drain_inbox(self) -> None:
        """Dispatch what was read, in order. A message whose handling waits
        in ``erlang.call`` lets nested levels dispatch the rest meanwhile."""
        inbox = self._inbox
        while inbox and not self._stopping:
            if self.channel.pending() > self.high_water and not self._waiting:
                # Backpressure: one read can bring thousands of tasks;
                # the rest waits until Erlang has read the backlog
                # (``_flush`` drains it again under the low-water mark).
                self._pause_reading()
                return
            self.dispatch(inbox.popleft())
        if not inbox and self.channel.pending() < self.low_water:
            self._resume_reading()

    def dispatch(self, message: Any) -> None:
        """Handle one message as ``Channel.read()`` returns it."""
        if isinstance(message, tuple) and message:
            tag, size = message[0], len(message)
            if tag == "task" and size == 7:
                self._run_task(*message[1:])
                return
            if tag == "cancel" and size == 2:
                self._cancel(message[1])
                return
            if tag in ("exec", "eval") and size in (3, 4):
                self._source(message[1], tag, message[2],
                             message[3] if size == 4 else None)
                return
            if tag == "call_reply" and size == 3:
                self._call_reply(message[1], message[2])
                return
            if tag == "setup" and size == 2:
                self.bridge.setup(message[1])
                return
            if tag == "stop" and size == 1:
                self.stop()
                return
        self._send((_ERROR, (Atom("unknown_message"), message)))

    # -- output ------------------------------------------------------------

    def _send(self, term: Any) -> None:
        try:
            self.channel.send(term)
        except (TypeError, ValueError) as exc:
            self._log("error", f"pyport: could not encode {term!r}: {exc}")

    def _reply_error(self, id: Any, reason: Any) -> None:
        self._send((_RESULT, id, (_ERROR, reason)))

    def _reply_ok(self, id: Any, value: Any) -> None:
        try:
            self.channel.send_result(id, value)
        except Exception as exc:  # unconvertible result (TypeError), too deep, ...
            self._reply_error(id, _python_error(exc, with_traceback=False))

    def fail_start(self, reason: Any) -> None:
        """Tell Erlang the port cannot start (``{start_failed, Reason}``)
        instead of ``{ready, Info}``, and write it out."""
        self._send((Atom("start_failed"), reason))
        self._drain(SHUTDOWN_GRACE)

    def _log(self, level: str, message: str, logger: str = "erlang") -> None:
        try:
            self.channel.send((_LOG, Atom(level), logger, message))
        except Exception as exc:  # pragma: no cover - strings always encode
            print(f"pyport: {message} ({exc})", file=sys.stderr)

    def _fail(self, id: Any, reply: bool, label: str, exc: BaseException) -> None:
        if reply:
            self._reply_error(id, _python_error(exc))
        else:
            tb = "".join(traceback.format_exception(exc))
            self._log("error", f"task {label} failed: {type(exc).__name__}: {exc}\n{tb}")

    # -- tasks -------------------------------------------------------------

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
        target: object
        if "." in func_name:
            target = functools.reduce(getattr, func_name.split("."), module)
        else:
            target = getattr(module, func_name)
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
        reply = opts.get("reply", True) is not False
        deadline = opts.get("deadline_ms")
        if deadline is None or deadline == "infinity":
            return reply, None
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
            raise _OptionError(f"deadline_ms must be a number of milliseconds, "
                               f"not {deadline!r}")
        return reply, max(deadline, 0) / 1000.0

    def _run_task(self, id: Any, module_name: Any, func_name: Any,
                  args: Any, kwargs: Any, opts: Any) -> None:
        label = f"{module_name}.{func_name}"
        if not opts:
            # The common case (create_task/await): no deadline, a reply.
            reply, deadline = True, None
        else:
            try:
                reply, deadline = self._options(opts)
            except _OptionError as exc:
                self._reply_error(id, (_PYTHON, "TypeError", str(exc), ""))
                return
        caller = opts.get("caller") if isinstance(opts, dict) else None
        token = current_caller.set(caller if isinstance(caller, Pid) else None)
        bridge = self.bridge
        frame = bridge.enter_frame(
            id, None if deadline is None else self.loop.time() + deadline)
        _interop.reset_time_slice()
        try:
            func = self._lookup(module_name, func_name)
            if not isinstance(args, (list, tuple)):
                raise TypeError(f"task arguments must be a list, not {type(args).__name__}")
            if kwargs is None:
                kwargs = {}
            elif not isinstance(kwargs, dict):
                raise TypeError(f"task kwargs must be a map, not {type(kwargs).__name__}")
            result = func(*args, **kwargs)
            if _interop.is_marker(result):
                # erlang.schedule()/schedule_py(): continue as a Task.
                result = _interop.run_marker(result)
            if type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    task = self.loop.create_task(result, name=f"pyport:{label}")
                else:
                    task = asyncio.ensure_future(result, loop=self.loop)
            else:
                if reply:
                    self._reply_ok(id, result)
                return
        except asyncio.CancelledError:
            # Cancelled (or timed out) while waiting in a blocking Erlang call.
            reason = frame.reason or _CANCELLED
            if reply:
                self._reply_error(id, Atom(reason))
            elif reason == _TIMEOUT:
                self._log("error", f"task {label} timed out")
            return
        except Exception as exc:
            self._fail(id, reply, label, exc)
            return
        finally:
            bridge.leave_frame(frame)
            current_caller.reset(token)
        job = _Job(id, label, reply, task)
        self._jobs[id] = job
        if deadline is not None:
            job.timer = self.loop.call_later(deadline, self._expire, job)
        task.add_done_callback(functools.partial(self._task_done, job))

    def _expire(self, job: _Job) -> None:
        job.timer = None
        if not job.task.done():
            job.reason = _TIMEOUT
            job.task.cancel(msg="pyport: deadline_ms passed")

    def _cancel(self, id: Any) -> None:
        job = self._jobs.get(id)
        if job is None:
            # A plain function still running can only be waiting in a
            # blocking Erlang call: make that call give up.
            self.bridge.cancel_frame(id, _CANCELLED)
            return
        if job.task.done():
            return  # finished already (its reply is queued or sent)
        job.reason = _CANCELLED
        job.task.cancel(msg="pyport: cancelled by Erlang")

    def _task_done(self, job: _Job, task: asyncio.Future[Any]) -> None:
        if self._jobs.get(job.id) is job:
            del self._jobs[job.id]
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        if job.reason is not None or task.cancelled():
            # A cancel we asked for wins even if the task swallowed it.
            reason = job.reason or _CANCELLED
            if not task.cancelled():
                task.exception()  # mark it retrieved: no "never retrieved" log
            if job.reply:
                self._reply_error(job.id, Atom(reason))
            elif reason == _TIMEOUT:
                self._log("error", f"task {job.label} timed out")
            return
        exc = task.exception()
        if exc is not None:
            self._fail(job.id, job.reply, job.label, exc)
        elif job.reply:
            self._reply_ok(job.id, task.result())

    # -- exec / eval / call_reply --------------------------------------------

    @staticmethod
    def _main_namespace() -> dict[str, Any]:
        main = sys.modules.get("__main__")
        if main is None:  # pragma: no cover - the interpreter always has one
            main = ModuleType("__main__")
            sys.modules["__main__"] = main
        return main.__dict__

    def _source(self, id: Any, kind: str, text: Any, opts: Any = None) -> None:
        caller = opts.get("caller") if isinstance(opts, dict) else None
        token = current_caller.set(caller if isinstance(caller, Pid) else None)
        frame = self.bridge.enter_frame(id, None)
        try:
            if not isinstance(text, str):
                raise TypeError(f"{kind} source must be a string, not {type(text).__name__}")
            code = compile(text, f"<erlang {kind}>", kind)
            value = eval(code, self._main_namespace())
        except asyncio.CancelledError:
            self._reply_error(id, Atom(frame.reason or _CANCELLED))
            return
        except Exception as exc:
            self._fail(id, True, kind, exc)
            return
        finally:
            self.bridge.leave_frame(frame)
            current_caller.reset(token)
        self._reply_ok(id, None if kind == "exec" else value)

    def _exec(self, id: Any, code: Any) -> None:
        self._source(id, "exec", code)

    def _eval(self, id: Any, expr: Any) -> None:
        self._source(id, "eval", expr)

    def _call_reply(self, call_id: Any, reply: Any) -> None:
        self.bridge.on_reply(call_id, reply)


# -- Python logging -> {log, Level, Logger, Message} ----------------------------

_level_name = level_name


class ChannelLogHandler(logging.Handler):
    """Sends Python logging records to Erlang as ``{log, Level, Logger, Msg}``.

    Records from threads other than the loop's are handed to the loop with
    ``call_soon_threadsafe`` (the channel is only used from the loop thread).
    """

    def __init__(self, server: PortServer, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.server = server
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            term = (_LOG, Atom(_level_name(record.levelno)), record.name, message)
            server = self.server
            if threading.get_ident() == server._loop_thread:
                server._send(term)
            elif not server.loop.is_closed():
                server.loop.call_soon_threadsafe(server._send, term)
        except RuntimeError:
            pass  # the loop closed while we were at it
        except Exception:
            self.handleError(record)


# -- entry point ----------------------------------------------------------------


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = list(argv)
    if args and args[0] == "port":  # tolerate the sub-command word itself
        args = args[1:]
    parser = argparse.ArgumentParser(prog="pyport port",
                                     description="pyport in port mode (fds 3/4)")
    parser.add_argument("--max-packet", type=int, default=DEFAULT_MAX_PACKET,
                        metavar="BYTES", help="largest packet accepted (default 64 MiB)")
    parser.add_argument("--path", action="append", default=[], metavar="DIR",
                        help="prepend DIR to sys.path (repeatable, order kept)")
    parser.add_argument("--venv", metavar="DIR",
                        help="make the virtualenv DIR's site-packages importable")
    parser.add_argument("--preload", action="append", default=[], metavar="MODULE",
                        help="import MODULE before reporting ready (repeatable)")
    parser.add_argument("--max-atoms", type=int, metavar="N",
                        help="distinct atoms Python may create (default 10000)")
    parser.add_argument("--log-level", metavar="OTP_LEVEL",
                        help="root logger level, as an OTP level (debug, info, "
                             "notice, warning, error, ...)")
    parser.add_argument("--capture-output", action="store_true",
                        help="send what is written to fds 1/2 to Erlang, line by line")
    return parser.parse_args(args)


def _fix_sys_executable() -> None:
    """Point ``sys.executable`` at this executable (it runs as ``python3``).

    An embedded interpreter guesses ``sys.executable`` from ``PATH``; child
    Python processes (``asyncio.create_subprocess_exec(sys.executable, ...)``,
    ``multiprocessing``) must get pyport itself, with ``_pyport`` built in.
    """
    try:
        exe = os.readlink("/proc/self/exe")
    except OSError:  # pragma: no cover - not Linux
        return
    try:
        same = bool(sys.executable) and os.path.samefile(sys.executable, exe)
    except OSError:
        same = False
    if not same:
        sys.executable = exe
        sys._base_executable = exe  # type: ignore[attr-defined]


#: Every atom the port itself may send. They are made before the bound on
#: atoms (``--max-atoms``) applies, so that user code using up the bound
#: cannot keep the port from saying ``timeout`` or logging a warning.
_PORT_ATOMS = (
    "ready", "protocol", "python", "os_pid", "mode", "shared_gil", "subinterp",
    "free_threaded", "result", "ok", "error", "log", "output", "stdout", "stderr",
    "start_failed", "unknown_message", "bad_python_path", "bad_venv",
    "preload_failed", "timeout", "cancelled", "call", "send", "whereis", "debug",
    "info", "notice", "warning", "critical", "alert", "emergency",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the port: ``argv`` are the options after ``pyport port``."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    _fix_sys_executable()
    for name in _PORT_ATOMS:
        Atom(name)
    if args.max_atoms is not None:
        _pyport.set_max_atoms(max(args.max_atoms, 0))
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    channel = _pyport.Channel(3, 4, args.max_packet)
    server = PortServer(loop, channel)
    forwarder = OutputForwarder(loop, server._send) if args.capture_output else None
    if forwarder is not None:
        forwarder.start()
    handler = ChannelLogHandler(server)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        try:
            if args.log_level is not None:
                root.setLevel(python_level(args.log_level))
            if args.venv:
                try:
                    _env.activate_venv(args.venv)
                except ValueError as exc:
                    raise _env.StartError((Atom("bad_venv"), args.venv, str(exc)),
                                          f"venv: {exc}") from exc
            _env.add_python_path(args.path)
            _env.preload(args.preload)
        except (_env.StartError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, _env.StartError) else str(exc)
            print(f"pyport: cannot start: {exc}", file=sys.stderr, flush=True)
            if forwarder is not None:
                forwarder.stop()
            server.fail_start(reason)
            return 1
        return server.serve_forever()
    finally:
        if forwarder is not None:
            # The last lines (written while shutting down) go out too.
            forwarder.stop()
            server._drain(1.0)
        root.removeHandler(handler)
        asyncio.set_event_loop(None)
