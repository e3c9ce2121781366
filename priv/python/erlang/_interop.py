"""Python -> Erlang: ``send``, ``call``, ``async_call``, ``self``, ``whereis``,
``atom``, and the scheduling helpers of the NIF-based API this follows.

Everything that needs Erlang goes through the :class:`Bridge` that the port
server installs (``erlang._port``); without one (standalone mode, ``pyport
run``) those functions raise :class:`NotConnectedError`.

Wire packets (docs/DESIGN.md, docs/interop.md)::

    port -> Erlang   {call, CallId, Name, Args}      erlang.call / async_call
                     {send, CallId, Dest, Term}      erlang.send
                     {whereis, CallId, Name}         erlang.whereis
    Erlang -> port   {call_reply, CallId, {ok, Value} | {error, Reason}}

**Blocking calls and re-entrancy.** ``call``, ``send`` and ``whereis`` block
the code that calls them until Erlang answers, but not the event loop: while
waiting, the bridge keeps running loop iterations *nested* inside the
waiting callback (:meth:`Bridge.wait`). Every other callback, task, timer and
incoming packet proceeds meanwhile, so an Erlang callback that submits work
to this very loop (``py_event_loop:run/…``) is served, and Python -> Erlang ->
Python chains complete however deep they go (up to :data:`MAX_NESTING`).
Only the frames *below* a waiting call are held until its answer arrives.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import heapq
import importlib
import inspect
import itertools
import threading
from asyncio import tasks as _tasks
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._native import _pyport
from ._types import Atom, Pid, Ref

if TYPE_CHECKING:  # pragma: no cover
    from ._port import PortServer

__all__ = [
    "AtomLimitError",
    "CallError",
    "NotConnectedError",
    "ProcessError",
    "ScheduleMarker",
    "UnknownCallbackError",
    "async_call",
    "atom",
    "call",
    "consume_time_slice",
    "schedule",
    "schedule_py",
    "self",
    "send",
    "whereis",
]

#: how many blocking calls may wait inside one another on one loop
MAX_NESTING = 32
#: abandoned call ids remembered, so that their late replies are dropped quietly
_ABANDONED_KEPT = 4096
#: longest nested wait in the poller before conditions are checked again (s)
_MAX_SELECT = 24 * 3600.0

AtomLimitError = _pyport.AtomLimitError


# -- exceptions ------------------------------------------------------------------


class NotConnectedError(RuntimeError):
    """An Erlang-side operation was used without an Erlang side.

    Raised by :func:`send`, :func:`call`, :func:`async_call`, :func:`self` and
    :func:`whereis` when Python does not run as a pyport port (for instance
    under ``priv/pyport run``), and by a blocking call whose port is shutting
    down.
    """


class ProcessError(Exception):
    """:func:`send` to a process that does not exist (dead pid, unregistered
    name). ``dest`` is the destination as given."""

    def __init__(self, message: str, dest: Any = None) -> None:
        super().__init__(message)
        self.dest = dest


class CallError(Exception):
    """An Erlang callback called with :func:`call`/:func:`async_call` raised.

    ``erlang_class`` is ``'error'``, ``'exit'`` or ``'throw'``; ``reason`` is
    the Erlang reason converted by the type table (or its printed form when
    it has no Python form); ``stacktrace`` is Erlang's formatted exception.
    """

    def __init__(self, name: str, erlang_class: str, reason: Any,
                 stacktrace: str = "") -> None:
        super().__init__(f"erlang.call({name!r}) raised {erlang_class}:{reason!r}")
        self.name = name
        self.erlang_class = erlang_class
        self.reason = reason
        self.stacktrace = stacktrace


class UnknownCallbackError(CallError, LookupError):
    """No Erlang function is registered under that name
    (``py_callback:register/2``)."""

    def __init__(self, name: str) -> None:
        CallError.__init__(self, name, "error", ("unknown_callback", name))
        self.args = (f"no Erlang callback registered as {name!r} "
                     f"(py_callback:register/2)",)


# -- the caller of the current task ------------------------------------------

#: the Erlang process that submitted the task running now (a Pid), set by the
#: port server from the task's options; copied into asyncio Tasks it creates
current_caller: contextvars.ContextVar[Pid | None] = contextvars.ContextVar(
    "erlang_caller", default=None)


# -- the bridge --------------------------------------------------------------


class _Waiter:
    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = False
        self.reply: Any = None


class SyncFrame:
    """A plain (non-coroutine) task the port server is running right now.

    A blocking call made by it stops waiting when the task is cancelled or
    its deadline passes (``reason`` is then ``'cancelled'``/``'timeout'``).
    """

    __slots__ = ("id", "deadline", "reason", "outer")

    def __init__(self, id: Any, deadline: float | None,
                 outer: SyncFrame | None) -> None:
        self.id = id
        self.deadline = deadline  # loop.time() value, or None
        self.reason: str | None = None
        self.outer = outer


def _noop() -> None:
    return None


class Bridge:
    """The port's link to Erlang for calls made from Python.

    Created and installed by :class:`erlang._port.PortServer`; it uses the
    server's channel, loop, inbox and flush.
    """

    def __init__(self, server: PortServer) -> None:
        self.server = server
        self.loop = server.loop
        self._ids = itertools.count(1)
        self._sync: dict[int, _Waiter] = {}
        self._async: dict[int, asyncio.Future[Any]] = {}
        self._abandoned: collections.OrderedDict[int, None] = collections.OrderedDict()
        #: blocking calls waiting right now, innermost last
        self.depth = 0
        #: the plain task running now (see SyncFrame), and all that run
        self.frame: SyncFrame | None = None
        self._frames: dict[Any, SyncFrame] = {}
        #: the worker process owning the port, from Erlang's setup packet
        self.worker: Pid | None = None
        #: this loop's index in the pool, from the setup packet
        self.loop_index: int | None = None

    # -- setup ---------------------------------------------------------------

    def setup(self, info: Any) -> None:
        """``{setup, #{worker => Pid, loop => Index}}`` from the worker."""
        if isinstance(info, dict):
            worker = info.get("worker")
            if isinstance(worker, Pid):
                self.worker = worker
            index = info.get("loop")
            if isinstance(index, int):
                self.loop_index = index

    # -- sync frames -----------------------------------------------------------

    def enter_frame(self, id: Any, deadline: float | None) -> SyncFrame:
        frame = SyncFrame(id, deadline, self.frame)
        self.frame = frame
        self._frames[id] = frame
        return frame

    def leave_frame(self, frame: SyncFrame) -> None:
        self.frame = frame.outer
        if self._frames.get(frame.id) is frame:
            del self._frames[frame.id]

    def cancel_frame(self, id: Any, reason: str) -> bool:
        """Marks the running plain task ``id`` cancelled; True if found.

        Only a plain task waiting in a blocking call can still be running
        when a cancel arrives; the wait then raises ``CancelledError``."""
        frame = self._frames.get(id)
        if frame is None:
            return False
        if frame.reason is None:
            frame.reason = reason
        return True

    # -- requests --------------------------------------------------------------

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self.server._loop_thread

    def _queue(self, tag: str, call_id: int, fields: tuple[Any, ...]) -> None:
        # TypeError (an argument outside the type table) reaches the caller;
        # nothing is queued then.
        self.server.channel.send((Atom(tag), call_id, *fields))

    def request(self, tag: str, *fields: Any) -> Any:
        """Send ``{Tag, CallId, Fields...}`` and block until its reply."""
        if not self.on_loop_thread():
            return self._request_from_thread(tag, fields)
        if self.depth >= MAX_NESTING:
            raise RecursionError(
                f"more than {MAX_NESTING} blocking Erlang calls wait inside "
                "one another on this loop; use 'await erlang.async_call(...)'")
        call_id = next(self._ids)
        self._queue(tag, call_id, fields)
        waiter = _Waiter()
        self._sync[call_id] = waiter
        try:
            self.wait(waiter)
        except BaseException:
            if not waiter.done:
                self._abandon(call_id)
            raise
        finally:
            del self._sync[call_id]
        return waiter.reply

    async def request_async(self, tag: str, *fields: Any) -> Any:
        """Send ``{Tag, CallId, Fields...}``; the reply, without blocking."""
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            cf = asyncio.run_coroutine_threadsafe(
                self.request_async(tag, *fields), self.loop)
            return await asyncio.wrap_future(cf)
        call_id = next(self._ids)
        self._queue(tag, call_id, fields)
        fut = loop.create_future()
        self._async[call_id] = fut
        try:
            return await fut
        except asyncio.CancelledError:
            self._abandon(call_id)
            raise
        finally:
            self._async.pop(call_id, None)

    def _request_from_thread(self, tag: str, fields: tuple[Any, ...]) -> Any:
        loop = self.loop
        if loop.is_closed():
            raise NotConnectedError("the port's event loop is closed")
        cf = asyncio.run_coroutine_threadsafe(self.request_async(tag, *fields), loop)
        return cf.result()

    def _abandon(self, call_id: int) -> None:
        self._abandoned[call_id] = None
        while len(self._abandoned) > _ABANDONED_KEPT:
            self._abandoned.popitem(last=False)

    def on_reply(self, call_id: Any, reply: Any) -> None:
        """``{call_reply, CallId, Reply}`` from Erlang."""
        waiter = self._sync.get(call_id)
        if waiter is not None:
            waiter.reply = reply
            waiter.done = True
            return
        fut = self._async.pop(call_id, None)
        if fut is not None:
            if not fut.done():
                fut.set_result(reply)
            return
        if self._abandoned.pop(call_id, 0) is None:
            return  # the caller gave up (cancelled, timed out): drop quietly
        self.server._log("warning", f"call_reply for unknown call {call_id!r}")

    # -- the nested wait ---------------------------------------------------------

    def wait(self, waiter: _Waiter) -> None:
        """Run loop iterations, nested in the current callback, until
        ``waiter`` is answered.

        The current asyncio Task (if any) is taken off the loop for the wait,
        so that other Tasks can step; it is put back afterwards. Handles that
        were ready when the wait began may run during it; the outer
        iteration's count of them is kept valid with no-op handles.
        """
        loop = self.loop
        server = self.server
        ready = loop._ready  # type: ignore[attr-defined]
        ready_before = len(ready)
        owner_task = _tasks.current_task(loop)
        owner_frame = self.frame
        cancels_before = owner_task.cancelling() if owner_task is not None else 0
        if owner_task is not None:
            _tasks._leave_task(loop, owner_task)
        self.frame = None
        self.depth += 1
        server._waiting += 1
        server._resume_reading()
        try:
            while True:
                server._drain_inbox()
                if waiter.done:
                    return
                if owner_task is not None and owner_task.cancelling() > cancels_before:
                    raise asyncio.CancelledError()
                if owner_frame is not None:
                    if (owner_frame.reason is None and owner_frame.deadline is not None
                            and loop.time() >= owner_frame.deadline):
                        owner_frame.reason = "timeout"
                    if owner_frame.reason is not None:
                        raise asyncio.CancelledError()
                if server._stopping:
                    if owner_task is not None or owner_frame is not None:
                        raise asyncio.CancelledError()
                    raise NotConnectedError("the port is shutting down; "
                                            "Erlang will not answer")
                server._flush()
                limit = None
                if owner_frame is not None and owner_frame.deadline is not None:
                    limit = max(0.0, owner_frame.deadline - loop.time())
                _run_nested_once(loop, limit)
        finally:
            server._waiting -= 1
            self.depth -= 1
            self.frame = owner_frame
            if owner_task is not None:
                _tasks._enter_task(loop, owner_task)
            missing = ready_before - len(ready)
            if missing > 0:
                ready.extendleft(asyncio.Handle(_noop, (), loop) for _ in range(missing))

    # -- reply decoding ------------------------------------------------------------

    @staticmethod
    def call_result(name: str, reply: Any) -> Any:
        """The value of an ``erlang.call`` reply, or the exception it means."""
        if isinstance(reply, tuple) and len(reply) == 2:
            tag, value = reply
            if tag == "ok":
                return value
            if tag == "error":
                raise _call_error(name, value)
        raise CallError(name, "error", ("bad_reply", reply))


def _call_error(name: str, reason: Any) -> BaseException:
    if isinstance(reason, tuple):
        if len(reason) == 4 and reason[0] == "erlang":
            _, cls, why, stack = reason
            return CallError(name, str(cls), why, stack if isinstance(stack, str) else "")
        if len(reason) == 2 and reason[0] == "unknown_callback":
            return UnknownCallbackError(name)
        if len(reason) == 2 and reason[0] == "unconvertible":
            return TypeError(f"erlang.call({name!r}): the result has no Python "
                             f"form: {reason[1]}")
    return CallError(name, "error", reason)


def _run_nested_once(loop: asyncio.AbstractEventLoop, limit: float | None) -> None:
    """One iteration of ``loop`` (as ``BaseEventLoop._run_once``), safe to run
    inside a callback of that very loop, waiting at most ``limit`` seconds."""
    lp: Any = loop
    scheduled = lp._scheduled
    while scheduled and scheduled[0]._cancelled:
        lp._timer_cancelled_count -= 1
        heapq.heappop(scheduled)._scheduled = False
    ready = lp._ready
    if ready:
        timeout: float | None = 0
    elif scheduled:
        timeout = min(max(0.0, scheduled[0]._when - lp.time()), _MAX_SELECT)
    else:
        timeout = None
    if limit is not None:
        timeout = limit if timeout is None else min(timeout, limit)
    event_list = lp._selector.select(timeout)
    lp._process_events(event_list)
    event_list = None
    end_time = lp.time() + lp._clock_resolution
    while scheduled:
        handle = scheduled[0]
        if handle._when >= end_time:
            break
        handle = heapq.heappop(scheduled)
        handle._scheduled = False
        ready.append(handle)
    for _ in range(len(ready)):
        if not ready:  # a deeper wait ran them (it pads what it took)
            break
        handle = ready.popleft()
        if not handle._cancelled:
            _run_handle(handle, lp)
    handle = None
    hook = getattr(lp, "_iteration_hook", None)
    if hook is not None:
        hook()


def _run_handle(handle: Any, loop: Any) -> None:
    """Run a ready handle from a nested iteration.

    A handle whose context is entered further up the stack — a reader whose
    callback is the very one waiting in ``erlang.call``, e.g. the port's own
    fd 3 reader — cannot enter it again; it runs in a copy of the context.
    """
    try:
        handle._context.run(_noop)
    except RuntimeError:
        handle = asyncio.Handle(handle._callback, handle._args, loop,
                                context=handle._context.copy())
    handle._run()


_bridge: Bridge | None = None


def _set_bridge(bridge: Bridge | None) -> None:
    global _bridge
    _bridge = bridge


def _require(what: str) -> Bridge:
    bridge = _bridge
    if bridge is None:
        raise NotConnectedError(
            f"{what} needs an Erlang side: it works in code that pyport runs "
            "for Erlang (port mode), not under 'pyport run'")
    return bridge


# -- public API --------------------------------------------------------------------


def _check_dest(dest: Any) -> None:
    if isinstance(dest, (Pid, Atom, Ref)):
        return
    if (isinstance(dest, tuple) and len(dest) == 2
            and isinstance(dest[0], Atom) and isinstance(dest[1], Atom)):
        return  # {Name, Node}
    raise TypeError(
        f"erlang.send() destination must be an erlang.Pid, an erlang.Atom "
        f"(registered name), an erlang.Ref (alias) or (Atom, Atom) for a name "
        f"on a node, not {type(dest).__name__}")


def send(dest: Pid | Atom | Ref | tuple[Atom, Atom], term: Any) -> None:
    """Send ``term`` (converted by the type table) to an Erlang process.

    ``dest`` is an :class:`erlang.Pid`, a registered name as
    :class:`erlang.Atom`, a process alias (:class:`erlang.Ref`) or
    ``(Atom(name), Atom(node))``. Works from sync and async code and from
    any thread. The message has been delivered (or handed to the
    distribution) when this returns; a destination that does not exist —
    a dead local pid, a name nobody registered — raises
    :class:`ProcessError`; a term outside the type table raises
    :class:`TypeError` and nothing is sent.
    """
    _check_dest(dest)
    bridge = _require("erlang.send()")
    reply = bridge.request("send", dest, term)
    if reply == ("ok", True):
        return
    if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == "error":
        reason = reply[1]
        raise ProcessError(f"erlang.send(): no process {dest!r} ({reason!r})", dest)
    raise ProcessError(f"erlang.send(): unexpected reply {reply!r}", dest)


def _check_name(name: Any, what: str) -> str:
    if isinstance(name, Atom):
        return name.name
    if isinstance(name, str):
        return name
    raise TypeError(f"{what} name must be a str or erlang.Atom, not {type(name).__name__}")


def call(name: str | Atom, *args: Any) -> Any:
    """Call the Erlang function registered as ``name`` with ``args`` and
    return its result; blocks the calling code until Erlang answers.

    The Erlang side runs ``Fun(Args)`` (``py_callback:register(Name, Fun)``)
    in a fresh process. An Erlang exception raises :class:`CallError` (class
    and reason attached); an unknown name raises
    :class:`UnknownCallbackError`. The event loop keeps running while this
    waits (see the module's documentation), so the callback may itself run
    Python on this loop. From async code prefer ``await async_call(...)``.
    """
    label = _check_name(name, "callback")
    bridge = _require("erlang.call()")
    return Bridge.call_result(label, bridge.request("call", label, list(args)))


async def async_call(name: str | Atom, *args: Any) -> Any:
    """``await erlang.async_call(name, *args)``: :func:`call` without blocking;
    other tasks run while Erlang works. Cancelling the awaiting task stops
    waiting (the Erlang callback still runs to its end)."""
    label = _check_name(name, "callback")
    bridge = _require("erlang.async_call()")
    return Bridge.call_result(label, await bridge.request_async("call", label, list(args)))


def self() -> Pid:
    """The Erlang process this code may reply to: the process that submitted
    the running task (``run``/``create_task``/``spawn_task``), or, outside a
    task (e.g. in a thread), the worker process that owns this port."""
    caller = current_caller.get()
    if caller is not None:
        return caller
    bridge = _require("erlang.self()")
    if bridge.worker is None:
        raise NotConnectedError("erlang.self(): the worker's pid is not known yet")
    return bridge.worker


def whereis(name: str | Atom) -> Pid | None:
    """The pid registered as ``name`` on the Erlang node, or ``None``.
    A name that is not even an atom there is simply not registered (no atom
    is created for it)."""
    label = _check_name(name, "registered")
    bridge = _require("erlang.whereis()")
    reply = bridge.request("whereis", label)
    if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == "ok":
        value = reply[1]
        return value if isinstance(value, Pid) else None
    raise ProcessError(f"erlang.whereis({label!r}): unexpected reply {reply!r}", name)


def atom(name: str) -> Atom:
    """``erlang.Atom(name)``, checked: a str of at most 255 characters.

    Erlang never frees atoms, so the port bounds how many distinct names
    Python may turn into atoms (application env ``max_atoms``, default
    10000); beyond it this raises :class:`AtomLimitError`. Names already
    created stay usable."""
    if isinstance(name, Atom):
        return name
    if not isinstance(name, str):
        raise TypeError(f"atom name must be a str, not {type(name).__name__}")
    return Atom(name)


# -- schedule, schedule_py, consume_time_slice ----------------------------------


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


class _SchedulePy(ScheduleMarker):
    __slots__ = ("module", "func", "args", "kwargs")

    def __init__(self, module: str, func: str, args: list[Any],
                 kwargs: dict[str, Any]) -> None:
        self.module = module
        self.func = func
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"<erlang.schedule_py {self.module}.{self.func}>"

    def target(self) -> Callable[..., Any]:
        module = importlib.import_module(self.module)
        target: object = functools.reduce(getattr, self.func.split("."), module)
        if not callable(target):
            raise TypeError(f"{self.module}.{self.func} is not callable")
        return target


def schedule(name: str | Atom, *args: Any) -> ScheduleMarker:
    """Return a marker that, returned from a task's function, makes the task
    continue as ``erlang.call(name, *args)``: the Erlang callback's result
    becomes the task's result. The loop is not held while Erlang works."""
    return _ScheduleCall(_check_name(name, "callback"), args)


def schedule_py(module: str, func: str, args: list[Any] | tuple[Any, ...] | None = None,
                kwargs: dict[str, Any] | None = None) -> ScheduleMarker:
    """Return a marker that, returned from a task's function, makes the task
    continue with ``module.func(*args, **kwargs)`` after yielding to the
    event loop once (other callbacks and tasks run in between). That call
    may return another marker, a value, or an awaitable."""
    if not isinstance(module, str) or not isinstance(func, str):
        raise TypeError("schedule_py(module, func, ...) takes names as str")
    return _SchedulePy(module, func, list(args or ()), dict(kwargs or {}))


async def run_marker(marker: ScheduleMarker) -> Any:
    """Follow ``marker`` (and the markers its continuations return) to a value."""
    value: Any = marker
    while isinstance(value, ScheduleMarker):
        if isinstance(value, _ScheduleCall):
            value = await async_call(value.name, *value.args)
        elif isinstance(value, _SchedulePy):
            await asyncio.sleep(0)
            reset_time_slice()
            value = value.target()(*value.args, **value.kwargs)
            if inspect.isawaitable(value):
                value = await value
        else:  # pragma: no cover - no other marker kinds
            raise TypeError(f"unknown schedule marker {value!r}")
    return value


_slice_used = 0


def reset_time_slice() -> None:
    """Start a new time slice (the port does this at each task start and
    after each loop iteration)."""
    global _slice_used
    _slice_used = 0


def consume_time_slice(percent: int) -> bool:
    """Report that recent work used ``percent`` (1-100) of a time slice;
    ``True`` once the reports since the slice began reach 100, i.e. when
    long synchronous work should yield (return :func:`schedule_py`, or
    ``await asyncio.sleep(0)`` in a coroutine). A slice begins with each
    task the port starts, each continuation and each loop iteration; a
    ``True`` answer also starts a new one."""
    global _slice_used
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise ValueError(f"percent must be an int from 1 to 100, not {percent!r}")
    _slice_used += percent
    if _slice_used >= 100:
        _slice_used = 0
        return True
    return False


def is_marker(value: object) -> bool:
    return isinstance(value, ScheduleMarker)

