"""Streams: a task's generator flows to Erlang item by item, with credit.

``{stream_start, Id, Module, Func, Args, Kwargs, Opts}`` calls
``Module.Func(*Args, **Kwargs)``; what it returns (awaited first if it is
awaitable) must be a sync or async iterable that is not a plain container.
A pump Task then advances it only while the consumer has credit (``window``
items at first, more with each ``{stream_credit, Id, N}``), sending the items
produced within one loop iteration as one ``{stream_data, Id, Items}``
packet of at most ``batch`` items, and ends with ``{stream_end, Id, done}``
or ``{stream_end, Id, {error, Reason}}``. A cancel, the stream's
``deadline_ms`` or ``idle_ms`` close the generator (``aclose()``/``close()``)
so that its ``finally`` blocks and ``async with`` exits run. The packets
are in docs/protocol.md, the design in docs/streams.md.

Sync generators run on the loop thread, as plain task functions do: a
batch stops after :data:`SLICE` seconds so that a slow (blocking) generator
sends each item as it comes and lets the loop run between items. With a
deadline or an idle timeout, the watchdog (``erlang._deadline``) interrupts
a sync generator's ``next()``, or one step of an async generator, still
running past it.

Nothing is dropped silently: an item that cannot be sent (no Erlang form,
over ``max_output_packet``, an ``__erlang__`` hook that raises, an
``erlang.handle(...)``) ends the stream with an error naming its position
and type, after the items before it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from typing import Any, AsyncIterator, Callable, Iterator, Protocol

from ._deadline import StepBounded, TaskDeadline
from ._handles import Handle, HandleInTerm
from ._interop import current_caller
from ._native import _pyport
from ._types import Pid
from ._wire import (
    CANCELLED_REASON,
    IDLE_TIMEOUT_REASON,
    INFINITY,
    OPT_BATCH,
    OPT_CALLER,
    OPT_DEADLINE,
    OPT_IDLE,
    OPT_WINDOW,
    STREAM_REASONS,
    TIMEOUT_REASON,
    exception_message,
    exception_name,
    python_error,
    python_error_of,
    stream_data,
    stream_end,
)

__all__ = ["Streams", "SLICE"]

#: the longest a sync generator's batch runs before the loop gets a turn
SLICE = 0.002

#: what a stream cannot be: a container is a value, send it as a result
_CONTAINERS = (str, bytes, bytearray, memoryview, list, tuple, dict, set, frozenset)

#: the largest credit a stream may hold (Erlang grants at most this many
#: at once; the sum is kept bounded all the same)
_MAX_CREDIT = 1 << 40


class StreamHost(Protocol):
    """What a stream needs of the port server."""

    loop: asyncio.AbstractEventLoop
    channel: Any

    def lookup(self, module_name: Any, func_name: Any) -> Callable[..., Any]: ...

    def send(self, term: Any) -> None: ...

    def log(self, level: str, message: str) -> None: ...


class _BadOptions(TypeError):
    pass


class _Refused(Exception):
    """What ends a stream with an error that pyport raised for it (an item
    that cannot be sent, a function that returned no stream): its
    traceback would only show pyport's code, so ``error`` has none."""

    def __init__(self, error: tuple[Any, ...]) -> None:
        super().__init__(error[2])
        self.error = error


def _unsendable(position: int, item: Any, exc: BaseException) -> _Refused:
    """The error of the stream's ``position``-th item (from 0), which could
    not be sent: the exception's type and message, the item's type."""
    if isinstance(item, Handle) or isinstance(exc, HandleInTerm):
        what = repr(item) if isinstance(item, Handle) else type(item).__qualname__
        return _Refused(python_error_of(
            "TypeError", f"stream item {position} ({what}) cannot be sent to Erlang: "
                         "a stream carries terms, not object handles"))
    return _Refused(python_error_of(
        exception_name(exc), f"stream item {position} ({type(item).__qualname__}) "
                             f"cannot be sent to Erlang: {exception_message(exc)}"))


class _Stream:
    __slots__ = ("id", "label", "credit", "batch", "idle", "deadline_at", "waiter",
                 "task", "reason", "timer", "idle_timer", "progress", "buf",
                 "flush_handle", "source", "failure", "sent")

    def __init__(self, id: Any, label: str, window: int, batch: int,
                 idle: float | None, deadline_at: float | None) -> None:
        self.id = id
        self.label = label
        self.credit = window
        self.batch = batch
        self.idle = idle
        self.deadline_at = deadline_at
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        # Why the server ended the stream: cancelled, timeout, idle_timeout.
        self.reason: str | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        # loop.time() of the last item (or credit): idle is measured from it.
        self.progress = 0.0
        # Items of an async stream not sent yet, and the call that sends them.
        self.buf: list[Any] = []
        self.flush_handle: asyncio.Handle | None = None
        self.source: Any = None
        # An item a deferred flush could not send: the stream's error.
        self.failure: tuple[Any, ...] | None = None
        # Items sent so far: the position of the next one.
        self.sent = 0


def _options(opts: Any) -> tuple[int, int, float | None, float | None, Pid | None]:
    """``(window, batch, deadline_s, idle_s, caller)`` of a stream's Opts."""
    if not isinstance(opts, dict):
        raise _BadOptions(f"stream options must be a map, not {type(opts).__name__}")

    def count(key: str, default: int) -> int:
        value = opts.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _BadOptions(f"{key} must be a positive integer, not {value!r}")
        return value

    def seconds(key: str) -> float | None:
        value = opts.get(key)
        if value is None or value == INFINITY:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _BadOptions(f"{key} must be a number of milliseconds, not {value!r}")
        return max(value, 0) / 1000.0

    caller = opts.get(OPT_CALLER)
    return (count(OPT_WINDOW, 16), count(OPT_BATCH, 1024), seconds(OPT_DEADLINE),
            seconds(OPT_IDLE), caller if isinstance(caller, Pid) else None)


def _open(obj: Any) -> tuple[Any, bool]:
    """``(iterator, is_async)`` of what a stream function returned."""
    if hasattr(obj, "__aiter__"):
        return obj.__aiter__(), True
    if isinstance(obj, _CONTAINERS) or not hasattr(obj, "__iter__"):
        raise TypeError(f"a stream needs a generator, an async generator or another "
                        f"lazy iterable, not {type(obj).__name__}")
    return iter(obj), False


class Streams:
    """The streams of one port server, by id."""

    def __init__(self, host: StreamHost) -> None:
        self._host = host
        self._loop = host.loop
        self._streams: dict[Any, _Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    # -- messages from Erlang ---------------------------------------------------

    def start(self, id: Any, module_name: Any, func_name: Any, args: Any,
              kwargs: Any, opts: Any) -> None:
        """``stream_start``: call the function, then pump what it returned."""
        label = f"{module_name}.{func_name}"
        try:
            window, batch, deadline, idle, caller = _options(opts)
        except _BadOptions as exc:
            self._host.send(stream_end(id, python_error(TypeError(str(exc)),
                                                        with_traceback=False)))
            return
        if id in self._streams:
            self._host.send(stream_end(id, python_error(
                ValueError(f"stream id {id!r} is already streaming"), with_traceback=False)))
            return
        loop = self._loop
        st = _Stream(id, label, min(window, _MAX_CREDIT), batch, idle,
                     None if deadline is None else loop.time() + deadline)
        token = current_caller.set(caller)
        try:
            func = self._host.lookup(module_name, func_name)
            if not isinstance(args, (list, tuple)):
                raise TypeError(f"stream arguments must be a list, not {type(args).__name__}")
            if kwargs is None:
                kwargs = {}
            elif not isinstance(kwargs, dict):
                raise TypeError(f"stream kwargs must be a map, not {type(kwargs).__name__}")
            obj = func(*args, **kwargs)
            # The pump sees the caller too (the Task copies the context).
            st.task = loop.create_task(self._pump(st, obj), name=f"pyport-stream:{label}")
        except BaseException as exc:  # the stream's error, never the port's end
            self._host.send(stream_end(id, python_error(exc)))
            return
        finally:
            current_caller.reset(token)
        self._streams[id] = st
        st.progress = loop.time()
        if deadline is not None:
            st.timer = loop.call_later(deadline, self._expire, st, TIMEOUT_REASON)
        if idle is not None:
            st.idle_timer = loop.call_later(idle, self._check_idle, st)

    def credit(self, id: Any, n: Any) -> None:
        """``stream_credit``: the consumer takes ``n`` more items."""
        st = self._streams.get(id)
        if st is None or isinstance(n, bool) or not isinstance(n, int) or n < 1:
            return  # ended already, or not a grant
        st.credit = min(st.credit + n, _MAX_CREDIT)
        st.progress = self._loop.time()
        waiter = st.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def cancel(self, id: Any) -> bool:
        """``stream_cancel`` (or a task ``cancel`` naming a stream): close the
        generator. False when ``id`` is no live stream."""
        st = self._streams.get(id)
        if st is None:
            return False
        self._end(st, CANCELLED_REASON)
        return True

    # -- ending --------------------------------------------------------------

    def _end(self, st: _Stream, reason: str) -> None:
        if st.reason is None:
            st.reason = reason
        if st.task is not None and not st.task.done():
            st.task.cancel(msg=f"pyport: stream {reason}")

    def _expire(self, st: _Stream, reason: str) -> None:
        st.timer = None
        self._end(st, reason)

    def _check_idle(self, st: _Stream) -> None:
        """Idle is time spent waiting for the generator, not for credit."""
        st.idle_timer = None
        if st.idle is None or st.task is None or st.task.done():
            return
        now = self._loop.time()
        if st.waiter is not None:
            st.progress = now  # waiting for credit: the generator is not idle
        due = st.progress + st.idle
        if now >= due:
            self._end(st, IDLE_TIMEOUT_REASON)
        else:
            st.idle_timer = self._loop.call_later(due - now, self._check_idle, st)

    # -- the pump ------------------------------------------------------------

    async def _pump(self, st: _Stream, obj: Any) -> None:
        error: Any = None
        try:
            if inspect.isawaitable(obj):
                obj = await obj
            try:
                source, is_async = _open(obj)
            except TypeError as exc:
                raise _Refused(python_error(exc, with_traceback=False)) from None
            st.source = source
            if is_async:
                await self._pump_async(st, source)
            else:
                await self._pump_sync(st, source)
        except asyncio.CancelledError:
            if st.failure is not None:
                error = st.failure
            else:
                error = STREAM_REASONS[st.reason or CANCELLED_REASON]
                if st.reason != CANCELLED_REASON:
                    # A deadline: what was produced before it still goes.
                    error = self._flush_then(st, error)
        except TaskDeadline:
            # The watchdog interrupted a generator still running past the
            # nearer of its two deadlines: what it produced before goes.
            error = self._flush_then(
                st, STREAM_REASONS[st.reason or self._nearer_deadline(st)])
        except _Refused as exc:
            error = exc.error
        except BaseException as exc:  # the generator raised: after its items
            error = self._flush_then(st, python_error(exc))
        finally:
            await self._close(st)
            self._forget(st)
        if error is None and st.failure is not None:
            error = st.failure  # a deferred flush failed as the pump ended
        self._host.send(stream_end(st.id, error))

    def _flush_then(self, st: _Stream, error: Any) -> Any:
        """Sends what is buffered before the stream ends with ``error``
        (or with the error of an item that cannot be sent)."""
        try:
            self._flush(st)
        except _Refused as refused:
            return refused.error
        return error

    def _nearer_deadline(self, st: _Stream) -> str:
        if st.deadline_at is not None and self._loop.time() >= st.deadline_at:
            return TIMEOUT_REASON
        return IDLE_TIMEOUT_REASON if st.idle is not None else TIMEOUT_REASON

    async def _wait_credit(self, st: _Stream) -> None:
        while st.credit <= 0:
            waiter = self._loop.create_future()
            st.waiter = waiter
            try:
                await waiter
            finally:
                st.waiter = None

    async def _pump_sync(self, st: _Stream, it: Iterator[Any]) -> None:
        step = it.__next__
        clock = time.monotonic
        while True:
            if st.credit <= 0:
                await self._wait_credit(st)
            n = min(st.credit, st.batch)
            items: list[Any] = []
            token = self._arm(st)
            finished = False
            try:
                started = clock()
                for _ in range(n):
                    try:
                        items.append(step())
                    except StopIteration:
                        finished = True
                        break
                    if clock() - started > SLICE:
                        break
            except BaseException:
                self._disarm(token)
                token = None
                # The items produced before the error go first.
                st.credit -= len(items)
                self._send_items(st, items)
                raise
            finally:
                self._disarm(token)
            st.progress = self._loop.time()
            st.credit -= len(items)
            self._send_items(st, items)
            if finished:
                return
            await asyncio.sleep(0)

    def _limit(self, st: _Stream) -> float | None:
        """How long the generator may run now before the watchdog
        interrupts it: the nearer of the stream's deadline and idle bound
        (None: neither)."""
        limits = []
        if st.idle is not None:
            limits.append(st.idle + SLICE)
        if st.deadline_at is not None:
            limits.append(max(st.deadline_at - self._loop.time(), 0.0))
        return min(limits) if limits else None

    def _arm(self, st: _Stream) -> Any:
        """The watchdog for one batch of a sync generator, when it has a
        deadline: interrupts a ``next()`` blocked past it."""
        limit = self._limit(st)
        return None if limit is None else _pyport.arm_deadline(limit)

    @staticmethod
    def _disarm(token: Any) -> None:
        if token is not None:
            _pyport.disarm_deadline(token)

    async def _pump_async(self, st: _Stream, it: AsyncIterator[Any]) -> None:
        step = it.__anext__
        loop = self._loop
        # Each step of the generator (its code between two awaits) runs
        # under the watchdog when the stream has a deadline.
        limit = (None if st.idle is None and st.deadline_at is None
                 else functools.partial(self._limit, st))
        while True:
            if st.credit <= 0:
                self._flush(st)
                await self._wait_credit(st)
            try:
                if limit is None:
                    item = await step()
                else:
                    item = await StepBounded(step(), limit)
            except StopAsyncIteration:
                self._flush(st)
                return
            st.buf.append(item)
            st.credit -= 1
            if st.idle is not None:
                st.progress = loop.time()
            if len(st.buf) >= st.batch:
                self._flush(st)
                # A generator that never suspends must not keep the loop.
                await asyncio.sleep(0)
            elif st.flush_handle is None:
                # What else comes within this iteration joins the batch.
                st.flush_handle = loop.call_soon(self._flush_soon, st)

    def _flush_soon(self, st: _Stream) -> None:
        st.flush_handle = None
        try:
            self._flush(st)
        except _Refused as exc:
            # The pump ends with this item's error.
            st.buf.clear()
            st.failure = exc.error
            if st.task is not None and not st.task.done():
                st.task.cancel()

    def _flush(self, st: _Stream) -> None:
        if st.flush_handle is not None:
            st.flush_handle.cancel()
            st.flush_handle = None
        if st.buf:
            items, st.buf = st.buf, []
            self._send_items(st, items)

    def _send_items(self, st: _Stream, items: list[Any]) -> None:
        """Sends ``items`` as one packet; when that fails (an item with no
        Erlang form, a hook that raises, a handle, a batch over
        max_output_packet) halves the batch to send every item before the
        one that fails, which raises :class:`_Refused`."""
        if not items:
            return
        try:
            self._host.channel.send(stream_data(st.id, items))
        except BaseException as exc:  # an item's own __erlang__ may raise anything
            if len(items) == 1:
                raise _unsendable(st.sent, items[0], exc) from None
            half = len(items) // 2
            self._send_items(st, items[:half])
            self._send_items(st, items[half:])
            return
        st.sent += len(items)

    async def _close(self, st: _Stream) -> None:
        """Closes the source so that its clean-up runs (a no-op for one
        that finished or already ran its ``finally`` on the cancel)."""
        source, st.source = st.source, None
        if source is None:
            return
        try:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
                return
            close = getattr(source, "close", None)
            if close is not None:
                close()
        except BaseException as exc:  # clean-up code is task code too
            self._host.log("warning", f"stream {st.label}: closing it raised "
                                      f"{type(exc).__name__}: {exc}")

    def _forget(self, st: _Stream) -> None:
        if self._streams.get(st.id) is st:
            del self._streams[st.id]
        for handle in (st.timer, st.idle_timer, st.flush_handle):
            if handle is not None:
                handle.cancel()
        st.timer = st.idle_timer = st.flush_handle = None
        if st.waiter is not None and not st.waiter.done():
            st.waiter.cancel()
