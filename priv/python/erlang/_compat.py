"""The parts of erlang_python's Python API that pyport adds for code ported
from it (docs/porting.md): ``schedule_inline``, registered Erlang functions
as attributes of ``erlang`` (``erlang.my_fun(1, 2)``, ``from erlang import
my_fun``), ``erlang.run``/``asyncio.run`` from sync code the port runs,
the module reload behind ``py_event_loop_pool:reload/1``, ``erlang``
predefined in ``py:eval``/``py:exec``'s ``__main__``, and the helpers of
``py:stream_eval``, ``py:gc``, ``py:memory_stats`` and
``py:configure_logging``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import sys
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from . import _context, _schedule, _wire
from ._interop import MAX_NESTING, Bridge, check_name
from ._link import Waiter
from ._schedule import ScheduleMarker, SchedulePy

__all__ = [
    "ErlangFunction",
    "InlineMarker",
    "callback_attribute",
    "collect_garbage",
    "eval_iterable",
    "follow_inline",
    "install_nested_run",
    "memory_stats",
    "nested_run",
    "predefine_erlang",
    "reload_module",
    "schedule_inline",
    "set_log_level",
    "trace_memory",
]

_T = TypeVar("_T")

# -- schedule_inline ---------------------------------------------------------


class InlineMarker(SchedulePy):
    """What :func:`schedule_inline` returns. Returned from a function the
    port runs as a task, the task continues with ``module.func(*args,
    **kwargs)`` at once, in the same loop iteration: no round trip to Erlang
    and no turn of the loop in between (unlike ``schedule_py``).

    A ``schedule_py`` marker, so that a continuation already running as a
    Task (after ``schedule`` or ``schedule_py``) follows it too, with the
    one turn of the loop ``schedule_py`` takes."""

    __slots__ = ()

    inline = True

    def __repr__(self) -> str:
        return f"<erlang.schedule_inline {self.module}.{self.func}>"


def schedule_inline(module: str, func: str,
                    args: list[Any] | tuple[Any, ...] | None = None,
                    kwargs: dict[str, Any] | None = None) -> ScheduleMarker:
    """Return a marker that, returned from a task's function, makes the task
    continue with ``module.func(*args, **kwargs)`` right away, in the same
    loop iteration (the continuation may return another marker, a value or
    an awaitable). For tight chains of Python steps that need nothing from
    Erlang in between; ``schedule_py`` lets the loop turn between steps."""
    if not isinstance(module, str) or not isinstance(func, str):
        raise TypeError("schedule_inline(module, func, ...) takes names as str")
    return InlineMarker(module, func, list(args or ()), dict(kwargs or {}))


def follow_inline(value: Any, seconds: float | None) -> Any:
    """Run the inline continuations that ``value`` starts, until a value or
    another kind of marker; with the watchdog armed for the task's
    ``seconds`` left, as for its first step (``_schedule.follow_inline``,
    which the port server calls)."""
    return _schedule.follow_inline(value, seconds)


# -- registered Erlang functions as attributes ------------------------------


class ErlangFunction:
    """An Erlang function registered with ``py_callback:register/2`` (or
    ``py:register_function/2,3``), as ``erlang.<name>`` returns it: calling
    it is ``erlang.call(name, *args)``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> Any:
        from ._interop import call

        return call(self.name, *args)

    def __repr__(self) -> str:
        return f"<erlang function {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErlangFunction) and other.name == self.name

    def __hash__(self) -> int:
        return hash((ErlangFunction, self.name))


def callback_attribute(name: str) -> ErlangFunction:
    """``erlang.<name>`` for a name the package does not define: the Erlang
    function registered under ``name``, asked of Erlang each time (one round
    trip), so a name registered later is found and one unregistered is not.

    ``AttributeError`` (so ``hasattr`` and introspection behave) for private
    names, outside port mode, and for names nothing is registered under."""
    if name.startswith("_") or _context.current() is None:
        raise AttributeError(f"module 'erlang' has no attribute {name!r}")
    context = _context.current()
    assert context is not None
    reply = context.bridge.request(_wire.REGISTERED, check_name(name, "callback"))
    if _wire.split_reply(reply) != (_wire.OK_TAG, True):
        raise AttributeError(
            f"module 'erlang' has no attribute {name!r} (no Erlang function is "
            f"registered under that name: py_callback:register/2)")
    return ErlangFunction(name)


# -- erlang.run / asyncio.run from sync code the port runs ------------------


def _port_loop_running() -> _context.PortContext | None:
    """The port's context when this is its loop thread with its loop running
    (sync code the port called), else None."""
    context = _context.current()
    if context is None or not context.bridge.link.on_loop_thread():
        return None
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return context if running is context.loop else None


def nested_run(main: Coroutine[Any, Any, _T]) -> _T:
    """Run ``main`` to completion on the port's loop from sync code that the
    loop is running (:func:`runs_nested`), with the nested iteration a
    blocking ``erlang.call`` uses: everything else on the loop keeps running
    meanwhile. ``RuntimeError`` (``main`` closed) anywhere else.

    Cancelling the task that waits here, or its deadline, cancels ``main``.
    Unlike ``asyncio.run``, the loop is shared: tasks that ``main`` started
    and did not await keep running after it returns."""
    context = _port_loop_running()
    if context is None:
        main.close()
        raise RuntimeError("cannot run a coroutine to completion from a running "
                           "event loop other than the port's own")
    bridge: Bridge = context.bridge
    if bridge.depth >= MAX_NESTING:
        main.close()
        raise RecursionError(
            f"more than {MAX_NESTING} blocking waits inside one another on "
            "this loop; await the coroutine instead")
    task = context.loop.create_task(main)
    waiter = Waiter()

    def finished(_: asyncio.Task[_T]) -> None:
        waiter.done = True

    task.add_done_callback(finished)
    try:
        bridge.wait(waiter)
    except BaseException:
        task.remove_done_callback(finished)
        task.cancel()
        raise
    return task.result()


def runs_nested() -> bool:
    """True when ``erlang.run``/``asyncio.run`` called now would run nested."""
    return _port_loop_running() is not None


_original_asyncio_run: Callable[..., Any] | None = None


def install_nested_run() -> None:
    """In port mode: make ``asyncio.run(coro)`` called from sync code on the
    port's loop run ``coro`` nested (:func:`nested_run`) instead of raising
    ``RuntimeError``; everywhere else it is the stdlib's own."""
    global _original_asyncio_run
    if _original_asyncio_run is not None:
        return
    original = asyncio.run
    _original_asyncio_run = original

    def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
        if runs_nested():
            return nested_run(main)
        result: _T = original(main, debug=debug)
        return result

    run.__doc__ = original.__doc__
    run.__wrapped__ = original  # type: ignore[attr-defined]
    asyncio.run = run


# -- reload -------------------------------------------------------------------


def reload_module(name: str) -> bool:
    """``importlib.reload`` of module ``name`` if this interpreter has
    imported it; True if it was reloaded, False if it was not loaded."""
    name = check_name(name, "module")
    module = sys.modules.get(name)
    if module is None:
        return False
    importlib.reload(module)
    return True


# -- erlang predefined in py:eval / py:exec -----------------------------------


def predefine_erlang() -> None:
    """Bind ``erlang`` in ``__main__`` (where ``py:eval``/``py:exec`` run),
    as erlang_python does, so ``py:eval(<<"erlang.my_fun(1)">>)`` needs no
    import. A name ``erlang`` the program already bound there is kept."""
    import erlang

    main = sys.modules.get("__main__")
    if main is not None:
        main.__dict__.setdefault("erlang", erlang)


# -- py:stream_eval, py:gc, py:memory_stats, py:configure_logging -------------


def eval_iterable(code: str, bindings: dict[str, Any] | None = None) -> Any:
    """The value of expression ``code`` in ``__main__`` (an iterable, which
    the port then streams)."""
    main = sys.modules["__main__"]
    local = {str(k): v for k, v in (bindings or {}).items()}
    return eval(compile(code, "<erlang stream_eval>", "eval"), main.__dict__, local)


def collect_garbage(generation: int = 2) -> int:
    """``gc.collect(generation)``: the number of unreachable objects found."""
    if generation not in (0, 1, 2):
        raise ValueError(f"generation must be 0, 1 or 2, not {generation!r}")
    return gc.collect(generation)


def memory_stats() -> dict[str, Any]:
    """erlang_python's memory statistics for this interpreter: the
    collector's per-generation stats, counts and thresholds, and the
    tracemalloc figures while tracing."""
    stats: dict[str, Any] = {
        "gc_stats": gc.get_stats(),
        "gc_count": gc.get_count(),
        "gc_threshold": gc.get_threshold(),
    }
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        stats["traced_memory_current"] = current
        stats["traced_memory_peak"] = peak
    return stats


def set_log_level(level: int) -> None:
    """The root logger's level (records at it and above reach the OTP
    logger)."""
    logging.getLogger().setLevel(level)


def trace_memory(frames: int) -> None:
    """``tracemalloc.start(frames)``, or ``tracemalloc.stop()`` for 0."""
    if frames > 0:
        tracemalloc.start(frames)
    else:
        tracemalloc.stop()
