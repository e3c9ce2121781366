"""``ErlangEventLoop``: asyncio's Unix selector loop with a Rust scheduling core,
on pyport's Rust poller.

:class:`ErlangSelectorEventLoop` is the standard library's
``_UnixSelectorEventLoop`` with one part replaced: the selector
(:class:`~erlang._selector.PollerSelector`). :class:`ErlangEventLoop` is that
loop with its scheduling core in Rust (``_pyport.LoopCore``, src/sched.rs):
the ready queue, the timer heap, the handles (``_pyport.Handle`` and
``_pyport.TimerHandle``) and the iteration (``_run_once``) are native; the
rest is the stdlib's. ``new_event_loop()`` makes an ``ErlangEventLoop``
unless ``PYPORT_LOOP=selector`` is set in the environment, which selects the
Python-only loop (kept for comparison in tests, benchmarks and the
conformance harness). Everything the
stdlib builds on a selector behaves exactly as in CPython: TCP, Unix
and UDP transports, servers, SSL, ``sock_*``, ``sendfile``, pipes,
subprocesses (child watchers) and signal handlers (``signal.set_wakeup_fd`` on
the loop's self-pipe). Timers are the loop's own heap: the poller's wait
timeout is the time to the next timer, and with nothing scheduled the loop
waits without a timeout, i.e. an idle loop wakes up zero times.

The one addition is the *iteration hook*: when ``_iteration_hook`` is set,
it is called after every iteration (``_run_once``). The port uses it to flush
all replies produced during the iteration in one non-blocking write.

A loop served by the port has an *owner* (:class:`LoopOwner`, the
``PortServer``), which changes three things, all so that task code cannot end
the loop other tasks run on: ``SystemExit``/``KeyboardInterrupt`` escaping a
callback (asyncio re-raises them from a Task after recording them as the
Task's exception) are handed to the owner and the loop goes on; ``stop()`` and
``close()`` raise ``RuntimeError`` unless the owner is stopping; and after
``fork()`` the child calls :meth:`ErlangEventLoop.abandon_in_child`, after
which any further iteration ends the child with ``os._exit(0)``.

:func:`run_nested_once` is one iteration of ``BaseEventLoop._run_once`` that
may run *inside* a callback of the same loop: a blocking ``erlang.call``
(``erlang._interop.Bridge.wait``) runs it until Erlang answers, so that the
loop keeps serving everything else meanwhile. It works on asyncio's private
state of a selector loop (``_ready``, ``_scheduled``, ``_selector``), which is
why it lives here, beside the loop built on that state.
"""

from __future__ import annotations

import asyncio
import heapq
from asyncio import base_events
import os
import selectors
import sys
import threading
from asyncio import unix_events
from collections.abc import Callable
from typing import Any, Protocol

from ._native import _pyport
from ._selector import PollerSelector

__all__ = ["ErlangEventLoop", "ErlangSelectorEventLoop", "LoopOwner", "loop_class",
           "pad_ready", "ready_count", "run_nested_once"]

STOP_REFUSED = "the port's event loop is stopped by Erlang, not by tasks"
CLOSE_REFUSED = "the port's event loop is closed by Erlang, not by tasks"

#: longest nested wait in the poller before the waiter checks again (s)
_MAX_SELECT = 24 * 3600.0

# The ErlangEventLoop currently running in the main thread, if any: the
# target of erlang.spawn_task() called from a thread with no running loop
# when no port loop is registered (standalone mode).
_main_thread_loop: ErlangSelectorEventLoop | None = None


def main_thread_loop() -> ErlangSelectorEventLoop | None:
    """The ``ErlangEventLoop`` running in the main thread, or ``None``."""
    return _main_thread_loop


class LoopOwner(Protocol):
    """What serves a loop (the port's ``PortServer``), as the loop sees it."""

    @property
    def stopping(self) -> bool:
        """True once the owner itself is stopping the loop."""

    def escaped(self, exc: BaseException) -> None:
        """``SystemExit``/``KeyboardInterrupt`` left a callback of the loop."""

    def signal_handler_removed(self, sig: int) -> None:
        """A handler for ``sig`` was removed (the owner may put its own back)."""


def _exit_child(*_args: object) -> None:
    """A forked child came back to the port's loop: it has nothing to serve
    (the channel belongs to the parent), so it ends here, without running
    exit handlers that would act on state shared with the parent."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # nothing to report to: the child is ending
            pass
    os._exit(0)


class ErlangSelectorEventLoop(unix_events._UnixSelectorEventLoop):
    """A full asyncio event loop whose I/O readiness comes from pyport's poller,
    scheduling in Python as the stdlib does (the fallback of
    :class:`ErlangEventLoop`).

    ``selector`` defaults to a new :class:`PollerSelector`; passing another
    selector is allowed (it is used as given), which is how the conformance
    harness and tests compare selectors on otherwise identical loops.
    """

    _iteration_hook: Callable[[], object] | None
    #: set while the port serves this loop (see the module's docstring)
    _owner: LoopOwner | None
    _forked: bool

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        if selector is None:
            selector = PollerSelector()
        super().__init__(selector)
        self._iteration_hook = None
        self._owner = None
        self._forked = False

    def _run_once(self) -> None:
        owner = self._owner
        if owner is None:
            super()._run_once()  # type: ignore[misc]  # private in typeshed
        else:
            try:
                super()._run_once()  # type: ignore[misc]
            except (SystemExit, KeyboardInterrupt) as exc:
                # The handles not run yet stay queued for the next iteration.
                owner.escaped(exc)
        hook = self._iteration_hook
        if hook is not None:
            hook()

    def stop(self) -> None:
        owner = self._owner
        if owner is not None and not owner.stopping:
            raise RuntimeError(STOP_REFUSED)
        super().stop()

    def remove_signal_handler(self, sig: int) -> bool:
        removed = super().remove_signal_handler(sig)
        owner = self._owner
        if removed and owner is not None and not owner.stopping:
            owner.signal_handler_removed(sig)
        return removed

    def abandon_in_child(self) -> None:
        """In a child forked while this loop ran: drop what the parent owns.

        The handles ready in the forking iteration are cancelled (they are
        the parent's work), the selector lets go of the epoll instance it
        shares with the parent without unregistering anything from it, and
        any further iteration (or nested wait) ends the child with
        ``os._exit(0)``. Event loops the child creates are not affected.
        """
        self._forked = True
        for handle in self._ready:  # type: ignore[attr-defined]
            handle.cancel()
        self._iteration_hook = _exit_child
        self._run_once = _exit_child  # type: ignore[method-assign]
        selector = self._selector  # type: ignore[attr-defined]
        if isinstance(selector, PollerSelector):
            selector.detach()

    def run_forever(self) -> None:
        global _main_thread_loop
        registered = False
        if (
            _main_thread_loop is None
            and threading.current_thread() is threading.main_thread()
        ):
            _main_thread_loop = self
            registered = True
        try:
            super().run_forever()
        finally:
            if registered:
                _main_thread_loop = None

    def close(self) -> None:
        owner = self._owner
        if owner is not None and not owner.stopping:
            raise RuntimeError(CLOSE_REFUSED)
        # Only once closed: a refused close (a running loop) keeps its hook.
        super().close()
        self._iteration_hook = None


_Core = _pyport.LoopCore


class ErlangEventLoop(ErlangSelectorEventLoop, _Core):
    """:class:`ErlangSelectorEventLoop` with its scheduling core in Rust.

    The methods bound below come from ``_pyport.LoopCore`` and take the
    place of the stdlib's (docs/event-loop.md, "The native core"). A
    subclass overriding ``time()`` is honoured; assigning ``loop.time`` on an
    instance is not (the core reads the monotonic clock itself).
    """

    # The handle types differ from typeshed's (_pyport.Handle is not an
    # asyncio.Handle subclass): the assignments below are ignored for that.
    time = _Core.time
    call_soon = _Core.call_soon  # type: ignore[assignment]
    _call_soon = _Core._call_soon
    call_soon_threadsafe = _Core.call_soon_threadsafe  # type: ignore[assignment]
    create_task = _Core.create_task
    get_debug = _Core.get_debug
    call_later = _Core.call_later  # type: ignore[assignment]
    call_at = _Core.call_at  # type: ignore[assignment]
    _add_callback = _Core._add_callback
    _timer_handle_cancelled = _Core._timer_handle_cancelled
    _run_once = _Core._run_once
    _process_events = _Core._process_events

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        super().__init__(selector)
        self._core_init()

    def _add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> Any:
        return self._add_io(fd, selectors.EVENT_READ, callback, args)

    def _add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> Any:
        return self._add_io(fd, selectors.EVENT_WRITE, callback, args)

    def _add_io(self, fd: Any, event: int, callback: Callable[..., object],
                args: tuple[Any, ...]) -> Any:
        """What the stdlib's ``_add_reader``/``_add_writer`` do (register
        ``fd`` for ``event``, or add ``event`` to its registration and cancel
        the handle it replaces), with a native handle: the core then runs
        the transports' ready callbacks without a Python frame."""
        self._check_closed()  # type: ignore[attr-defined]
        handle = _pyport.Handle(callback, args, self, None)
        selector = self._selector  # type: ignore[attr-defined]
        try:
            key = selector.get_key(fd)
        except KeyError:
            data = (handle, None) if event == selectors.EVENT_READ else (None, handle)
            selector.register(fd, event, data)
            return handle
        reader, writer = key.data
        if event == selectors.EVENT_READ:
            selector.modify(fd, key.events | event, (handle, writer))
            replaced = reader
        else:
            selector.modify(fd, key.events | event, (reader, handle))
            replaced = writer
        if replaced is not None:
            replaced.cancel()
        return handle


def loop_class() -> type[ErlangSelectorEventLoop]:
    """The loop class ``new_event_loop()`` makes: :class:`ErlangEventLoop`,
    or :class:`ErlangSelectorEventLoop` when ``PYPORT_LOOP=selector``."""
    choice = os.environ.get("PYPORT_LOOP", "native")
    if choice == "selector":
        return ErlangSelectorEventLoop
    if choice != "native":
        raise ValueError(f"PYPORT_LOOP must be 'native' or 'selector', not {choice!r}")
    return ErlangEventLoop


def run_debug(loop: Any, handle: Any, nested: bool) -> None:
    """Run ``handle`` in debug mode, as ``BaseEventLoop._run_once`` does
    (the native core calls this only when ``loop.get_debug()``): record it
    as the current handle and warn when it runs for
    ``slow_callback_duration`` or longer."""
    try:
        loop._current_handle = handle
        t0 = loop.time()
        if nested:
            run_nested_handle(handle, loop)
        else:
            handle._run()
        dt = loop.time() - t0
        if dt >= loop.slow_callback_duration:
            # base_events' own logger, looked up now: tests patch it there.
            base_events.logger.warning(  # type: ignore[attr-defined]
                "Executing %s took %.3f seconds",
                base_events._format_handle(handle), dt)  # type: ignore[attr-defined]
    finally:
        loop._current_handle = None


# -- nested iterations ----------------------------------------------------------


def _noop() -> None:
    return None


def ready_count(loop: asyncio.AbstractEventLoop) -> int:
    """How many handles are ready to run in ``loop``'s current iteration."""
    return len(loop._ready)  # type: ignore[attr-defined]


def pad_ready(loop: asyncio.AbstractEventLoop, count: int) -> None:
    """After a nested wait: refill ``loop``'s ready queue with no-op handles
    up to ``count``, the length it had when the wait began.

    The outer ``_run_once`` pops as many handles as were ready when it
    started; handles a nested iteration ran meanwhile must not make it pop
    (and run early) handles of the next iteration, or pop an empty queue.
    """
    ready = loop._ready  # type: ignore[attr-defined]
    missing = count - len(ready)
    if missing > 0:
        ready.extendleft(asyncio.Handle(_noop, (), loop) for _ in range(missing))


def run_nested_once(loop: asyncio.AbstractEventLoop, limit: float | None) -> None:
    """One iteration of ``loop`` (as ``BaseEventLoop._run_once``), safe to run
    inside a callback of that very loop, waiting at most ``limit`` seconds."""
    lp: Any = loop
    if getattr(lp, "_forked", False):
        _exit_child()
    if isinstance(lp, _Core):
        lp._run_nested(limit)
        hook = lp._iteration_hook
        if hook is not None:
            hook()
        return
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
    owner = getattr(lp, "_owner", None)
    for _ in range(len(ready)):
        if not ready:  # a deeper wait ran them (it pads what it took)
            break
        handle = ready.popleft()
        if not handle._cancelled:
            if owner is None:
                run_nested_handle(handle, lp)
                continue
            try:
                run_nested_handle(handle, lp)
            except (SystemExit, KeyboardInterrupt) as exc:
                # Not the waiting task's error: the handle's own.
                owner.escaped(exc)
    handle = None
    hook = getattr(lp, "_iteration_hook", None)
    if hook is not None:
        hook()


def run_nested_handle(handle: Any, loop: Any) -> None:
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
