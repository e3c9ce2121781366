"""The user-facing asyncio API of the ``erlang`` module.

``run``, ``new_event_loop``, ``install`` and ``ErlangEventLoopPolicy`` mirror
uvloop's API; ``sleep`` and ``spawn_task`` work from both sync and async
code; ``detect_mode`` reports how this interpreter runs Python threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import inspect
import sys
import sysconfig
import time
import warnings
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, TypeVar

from . import _context
from ._compat import nested_run, runs_nested
from ._loop import ErlangSelectorEventLoop, loop_class, main_thread_loop

__all__ = [
    "ErlangEventLoopPolicy",
    "ExecutionMode",
    "detect_mode",
    "install",
    "new_event_loop",
    "run",
    "sleep",
    "spawn_task",
]

_T = TypeVar("_T")

# -- loops, policy, run ------------------------------------------------------


def new_event_loop() -> ErlangSelectorEventLoop:
    """Return a new :class:`ErlangEventLoop` (not set as the current loop);
    an :class:`ErlangSelectorEventLoop` when ``PYPORT_LOOP=selector``."""
    return loop_class()()


class ErlangEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """The default Unix policy, making :class:`ErlangEventLoop` loops.

    Being the stdlib's Unix policy otherwise, it keeps its child watcher
    (``ThreadedChildWatcher``), so subprocesses work on its loops.
    """

    _loop_factory = staticmethod(new_event_loop)


def install() -> None:
    """Make ``asyncio.new_event_loop()`` / ``asyncio.run()`` use ErlangEventLoop.

    Sets :class:`ErlangEventLoopPolicy` as the global event loop policy.
    Deprecated on Python 3.12+ (event loop policies are on their way out):
    prefer :func:`run` or ``asyncio.Runner(loop_factory=erlang.new_event_loop)``.
    """
    if sys.version_info >= (3, 12):
        warnings.warn(
            "erlang.install() is deprecated since Python 3.12: use "
            "erlang.run(main()) or "
            "asyncio.Runner(loop_factory=erlang.new_event_loop)",
            DeprecationWarning,
            stacklevel=2,
        )
    asyncio.set_event_loop_policy(ErlangEventLoopPolicy())


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run coroutine ``main`` on a new ErlangEventLoop, like :func:`asyncio.run`.

    The loop is closed afterwards (remaining tasks cancelled, async
    generators and the default executor shut down). ``RuntimeError`` when
    called from a running event loop, except from sync code that pyport's
    port runs (a function Erlang called, directly or through a blocking
    call): there ``main`` runs to completion on the port's loop, with the
    nested iteration of a blocking ``erlang.call`` (docs/porting.md).
    """
    if _running_loop() is not None:
        if runs_nested():
            return nested_run(main)
        # Checked before the Runner makes (and then fails to close) a loop.
        raise RuntimeError("erlang.run() cannot be called from a running event loop")
    if sys.version_info < (3, 11):  # no asyncio.Runner: asyncio.run's steps
        return _run_without_runner(main, debug)
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


def _run_without_runner(main: Coroutine[Any, Any, _T], debug: bool | None) -> _T:
    from asyncio.runners import _cancel_all_tasks  # type: ignore[attr-defined]

    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


# -- sleep -------------------------------------------------------------------

_ASYNC_CODE_FLAGS = (
    inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR
)


class _Slept:
    """What sync ``erlang.sleep()`` returns: already done, awaitable for free."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator

    def __repr__(self) -> str:
        return "<erlang.sleep: done>"


def sleep(seconds: float) -> Awaitable[None]:
    """Sleep ``seconds``, from async or sync code.

    Called from a coroutine (an ``async def`` body), it returns
    ``asyncio.sleep(seconds)``: ``await erlang.sleep(0.1)`` yields to the
    event loop. Called from plain (``def``) code it blocks the calling thread
    with :func:`time.sleep` and returns an already completed awaitable. Note
    that plain code running inside the loop's thread (for instance a sync
    function called by the port) blocks the whole loop while it sleeps, as
    any blocking call does.
    """
    if seconds < 0:
        seconds = 0
    caller = sys._getframe(1)
    if caller.f_code.co_flags & _ASYNC_CODE_FLAGS:
        return asyncio.sleep(seconds)
    time.sleep(seconds)
    return _Slept()


# -- spawn_task --------------------------------------------------------------


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def spawn_task(
    coro: Coroutine[Any, Any, _T], *, name: str | None = None
) -> asyncio.Task[_T] | concurrent.futures.Future[_T]:
    """Start coroutine ``coro`` in the background, from sync or async code.

    - In a thread whose event loop is running (async code, or sync code called
      from a loop callback, e.g. a sync function the port runs): the task is
      created on that loop and the :class:`asyncio.Task` is returned.
    - In a thread with no running loop: the task is handed to the port's loop
      (in standalone mode: the ErlangEventLoop running in the main thread)
      with ``call_soon_threadsafe``, which wakes that loop at once. The return
      value is then a :class:`concurrent.futures.Future` that completes with
      the task's result; ``cancel()`` on it cancels the task.

    ``RuntimeError`` when there is no loop to run the task on (the coroutine is
    closed so that no "never awaited" warning follows).
    """
    if not asyncio.iscoroutine(coro):
        raise TypeError(f"a coroutine was expected, got {coro!r}")
    loop = _running_loop()
    if loop is not None:
        return loop.create_task(coro, name=name)
    # From a thread with no running loop: the port's loop, if this
    # interpreter serves a port, else the main thread's.
    port = _context.current()
    target = port.loop if port is not None else main_thread_loop()
    if target is None or target.is_closed():
        coro.close()
        raise RuntimeError(
            "erlang.spawn_task(): no running event loop in this thread and no "
            "port (or main-thread ErlangEventLoop) loop to hand the task to"
        )
    return _spawn_threadsafe(target, coro, name)


def _spawn_threadsafe(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, _T], name: str | None
) -> concurrent.futures.Future[_T]:
    result: concurrent.futures.Future[_T] = concurrent.futures.Future()

    def copy_outcome(task: asyncio.Task[_T]) -> None:
        # ``result`` stays PENDING until here, so that cancel() works on it.
        if task.cancelled():
            result.cancel()
            return
        if not result.set_running_or_notify_cancel():
            return  # cancelled by its holder meanwhile
        exc = task.exception()
        if exc is not None:
            result.set_exception(exc)
        else:
            result.set_result(task.result())

    def start() -> None:
        if result.cancelled():
            coro.close()
            return
        try:
            task = loop.create_task(coro, name=name)
        except Exception as exc:
            if result.set_running_or_notify_cancel():
                result.set_exception(exc)
            return
        task.add_done_callback(copy_outcome)

        def cancel_task(fut: concurrent.futures.Future[_T]) -> None:
            if fut.cancelled():
                try:
                    loop.call_soon_threadsafe(task.cancel)
                except RuntimeError:  # loop closed: the task is gone anyway
                    pass

        result.add_done_callback(cancel_task)

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:  # the loop was closed meanwhile
        coro.close()
        raise
    return result


# -- execution mode ----------------------------------------------------------


class ExecutionMode(enum.Enum):
    """How Python threads run in this interpreter (see :func:`detect_mode`)."""

    #: the classic interpreter: one GIL shared by all threads
    SHARED_GIL = "shared_gil"
    #: Python 3.12+ subinterpreter with its own GIL
    SUBINTERP = "subinterp"
    #: Python 3.13+ free-threaded build (``Py_GIL_DISABLED``) running without a GIL
    FREE_THREADED = "free_threaded"


def _interpreter_id(value: Any) -> int:
    if isinstance(value, tuple):  # 3.13's _interpreters returns (id, whence)
        value = value[0]
    return int(value)


def _in_subinterpreter() -> bool:
    if sys.version_info < (3, 12):
        return False
    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            mod = __import__(name)
        except ImportError:
            continue
        try:
            return _interpreter_id(mod.get_current()) != _interpreter_id(mod.get_main())
        except Exception:  # an API shape we do not know: assume the main one
            return False
    return False


def detect_mode() -> ExecutionMode:
    """Detect the execution mode of the running interpreter.

    ``FREE_THREADED`` on a Python 3.13+ ``Py_GIL_DISABLED`` build whose GIL is
    actually off, ``SUBINTERP`` inside a Python 3.12+ subinterpreter,
    ``SHARED_GIL`` otherwise (always, on pyport's Python 3.11).
    """
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
        if is_gil_enabled is None or not is_gil_enabled():
            return ExecutionMode.FREE_THREADED
    if _in_subinterpreter():
        return ExecutionMode.SUBINTERP
    return ExecutionMode.SHARED_GIL
