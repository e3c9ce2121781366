"""Python -> Erlang: ``send``, ``call``, ``async_call``, ``self``, ``whereis``
and ``atom`` (docs/interop.md); the scheduling helpers are in ``_schedule``.

Everything that needs Erlang goes through the :class:`Bridge` of the running
port (``erlang._context``); without one (standalone mode, ``pyport run``)
those functions raise :class:`NotConnectedError`. The packets (``call``,
``send``, ``whereis`` and their ``call_reply``) are described in
docs/protocol.md and built by ``erlang._wire``.

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
import itertools
from asyncio import tasks as _tasks
from typing import Any

from . import _context, _wire
from ._link import ServerLink
from ._link import Waiter as _Waiter
from ._loop import pad_ready, ready_count, run_nested_once
from ._native import _pyport
from ._types import Atom, Pid, Ref

__all__ = [
    "AtomLimitError",
    "CallError",
    "CallbackLimitError",
    "NotConnectedError",
    "ProcessError",
    "UnknownCallbackError",
    "async_call",
    "atom",
    "call",
    "check_name",
    "resolve",
    "self",
    "send",
    "whereis",
]

#: how many blocking calls may wait inside one another on one loop
MAX_NESTING = 32
#: abandoned call ids remembered, so that their late replies are dropped quietly
_ABANDONED_KEPT = 4096

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


class CallbackLimitError(CallError):
    """This loop already runs ``limit`` Erlang callbacks at once (application
    env ``max_callbacks``); nothing was started for this call."""

    def __init__(self, name: str, limit: Any) -> None:
        CallError.__init__(self, name, "error", (_wire.CALLBACK_LIMIT, limit))
        self.limit = limit
        self.args = (f"erlang.call({name!r}): this loop already runs {limit!r} "
                     f"Erlang callbacks at once, the limit (application env "
                     f"max_callbacks); nothing was started",)


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


class Bridge:
    """The port's link to Erlang for calls made from Python.

    Created by the port server, which it reaches through ``link``
    (:class:`~erlang._link.ServerLink`) to queue requests and, while a call
    waits, to keep the server's input flowing.
    """

    def __init__(self, link: ServerLink) -> None:
        self.link = link
        self.loop = link.loop
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
            worker = info.get(_wire.SETUP_WORKER)
            if isinstance(worker, Pid):
                self.worker = worker
            index = info.get(_wire.SETUP_LOOP)
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

    def _queue(self, tag: Atom, call_id: int, fields: tuple[Any, ...]) -> None:
        # TypeError (an argument outside the type table) reaches the caller;
        # nothing is queued then.
        self.link.queue(_wire.request(tag, call_id, fields))

    def request(self, tag: Atom, *fields: Any) -> Any:
        """Send ``{Tag, CallId, Fields...}`` and block until its reply."""
        if not self.link.on_loop_thread():
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
                self._abandon(call_id, tag)
            raise
        finally:
            del self._sync[call_id]
        return waiter.reply

    async def request_async(self, tag: Atom, *fields: Any) -> Any:
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
            self._abandon(call_id, tag)
            raise
        finally:
            self._async.pop(call_id, None)

    def _request_from_thread(self, tag: Atom, fields: tuple[Any, ...]) -> Any:
        loop = self.loop
        if loop.is_closed():
            raise NotConnectedError("the port's event loop is closed")
        cf = asyncio.run_coroutine_threadsafe(self.request_async(tag, *fields), loop)
        return cf.result()

    def _abandon(self, call_id: int, tag: Atom) -> None:
        if tag == _wire.CALL:
            # Erlang ends the callback's processes: nobody waits for them.
            self.link.send(_wire.call_cancel(call_id))
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
        self.link.log("warning", f"call_reply for unknown call {call_id!r}")

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
        link = self.link
        ready_before = ready_count(loop)
        owner_task = _tasks.current_task(loop)
        owner_frame = self.frame
        cancels_before = owner_task.cancelling() if owner_task is not None else 0
        if owner_task is not None:
            _tasks._leave_task(loop, owner_task)
        self.frame = None
        self.depth += 1
        # Other tasks step during the wait: the watchdog must not raise a
        # plain function's TaskDeadline in their code. The owner's deadline
        # is enforced just below instead.
        hold = _pyport.suspend_deadline()
        link.begin_wait()
        try:
            while True:
                link.dispatch_pending()
                if waiter.done:
                    return
                if owner_task is not None and owner_task.cancelling() > cancels_before:
                    raise asyncio.CancelledError()
                if owner_frame is not None:
                    if (owner_frame.reason is None and owner_frame.deadline is not None
                            and loop.time() >= owner_frame.deadline):
                        owner_frame.reason = _wire.TIMEOUT_REASON
                    if owner_frame.reason is not None:
                        raise asyncio.CancelledError()
                if link.stopping:
                    if owner_task is not None or owner_frame is not None:
                        raise asyncio.CancelledError()
                    raise NotConnectedError("the port is shutting down; "
                                            "Erlang will not answer")
                link.flush()
                limit = None
                if owner_frame is not None and owner_frame.deadline is not None:
                    limit = max(0.0, owner_frame.deadline - loop.time())
                run_nested_once(loop, limit)
        finally:
            link.end_wait()
            _pyport.disarm_deadline(hold)
            self.depth -= 1
            self.frame = owner_frame
            if owner_task is not None:
                _tasks._enter_task(loop, owner_task)
            pad_ready(loop, ready_before)

    # -- reply decoding ------------------------------------------------------------

    @staticmethod
    def call_result(name: str, reply: Any) -> Any:
        """The value of an ``erlang.call`` reply, or the exception it means."""
        outcome = _wire.split_reply(reply)
        if outcome is None:
            raise CallError(name, "error", ("bad_reply", reply))
        tag, value = outcome
        if tag == _wire.OK_TAG:
            return value
        raise _call_error(name, value)


def _call_error(name: str, reason: Any) -> BaseException:
    if isinstance(reason, tuple):
        if len(reason) == 4 and reason[0] == _wire.ERLANG_EXCEPTION:
            _, cls, why, stack = reason
            return CallError(name, str(cls), why, stack if isinstance(stack, str) else "")
        if len(reason) == 2 and reason[0] == _wire.UNKNOWN_CALLBACK:
            return UnknownCallbackError(name)
        if len(reason) == 2 and reason[0] == _wire.CALLBACK_LIMIT:
            return CallbackLimitError(name, reason[1])
        if len(reason) == 2 and reason[0] == _wire.UNCONVERTIBLE:
            return TypeError(f"erlang.call({name!r}): the result has no Python "
                             f"form: {reason[1]}")
    return CallError(name, "error", reason)


def _require(what: str) -> Bridge:
    context = _context.current()
    if context is None:
        raise NotConnectedError(
            f"{what} needs an Erlang side: it works in code that pyport runs "
            "for Erlang (port mode), not under 'pyport run'")
    return context.bridge


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
    :class:`ProcessError`, and so does another node whose distribution is
    full (``busy``: it does not read) or that is not connected
    (``noconnection``): the message is dropped, never waited for. A term
    outside the type table raises :class:`TypeError` and nothing is sent.
    """
    _check_dest(dest)
    bridge = _require("erlang.send()")
    reply = bridge.request(_wire.SEND, dest, term)
    outcome = _wire.split_reply(reply)
    if outcome == (_wire.OK_TAG, True):
        return
    if outcome is not None and outcome[0] == _wire.ERROR_TAG:
        reason = outcome[1]
        if reason in _wire.SEND_REFUSED:
            raise ProcessError(f"erlang.send(): {dest!r} refused ({reason}): the "
                               "distribution to its node is busy or not connected; "
                               "the message was dropped", dest)
        raise ProcessError(f"erlang.send(): no process {dest!r} ({reason!r})", dest)
    raise ProcessError(f"erlang.send(): unexpected reply {reply!r}", dest)


def check_name(name: Any, what: str) -> str:
    """The name of a callback or registered process, given as str or Atom."""
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
    label = check_name(name, "callback")
    bridge = _require("erlang.call()")
    return Bridge.call_result(label, bridge.request(_wire.CALL, label, list(args)))


async def async_call(name: str | Atom, *args: Any) -> Any:
    """``await erlang.async_call(name, *args)``: :func:`call` without blocking;
    other tasks run while Erlang works. Cancelling the awaiting task stops
    waiting and ends the Erlang callback (its process is killed). Beyond
    ``max_callbacks`` callbacks at once on this loop, :func:`call` and this
    raise :class:`CallbackLimitError`."""
    label = check_name(name, "callback")
    bridge = _require("erlang.async_call()")
    return Bridge.call_result(label, await bridge.request_async(_wire.CALL, label, list(args)))


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
    label = check_name(name, "registered")
    bridge = _require("erlang.whereis()")
    reply = bridge.request(_wire.WHEREIS, label)
    outcome = _wire.split_reply(reply)
    if outcome is not None and outcome[0] == _wire.OK_TAG:
        value = outcome[1]
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


def resolve(module: object, dotted: str) -> Any:
    """``module.a.b.c`` for ``dotted`` ``'a.b.c'``: the attribute walk that
    task and ``schedule_py`` names use to reach ``'path.join'`` or
    ``'Cls.meth'``."""
    return functools.reduce(getattr, dotted.split("."), module)
