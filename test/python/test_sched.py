"""The native scheduling core of ErlangEventLoop (``_pyport.LoopCore``).

Behaviour shared with the stdlib is in test_loop.py (run on all three
loops); these tests pin down what is specific to the core: its handle
types, its views of ``_ready``/``_scheduled``, timer bookkeeping, context
propagation, debug mode, errors, nested iterations, the fallback flag and
garbage collection of loops.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import subprocess
import sys
import threading
import weakref
from typing import Any

import pytest

import erlang
from erlang import _loop
from erlang._native import _pyport


@pytest.fixture
def lp() -> Any:
    loop = erlang.ErlangEventLoop()
    yield loop
    if not loop.is_closed():
        loop.close()


def test_handles_are_native_and_behave_like_the_stdlibs(lp):
    h = lp.call_soon(print, 1, 2)
    t = lp.call_later(10, print)
    assert type(h) is _pyport.Handle and type(t) is _pyport.TimerHandle
    assert isinstance(t, _pyport.Handle)
    assert h._callback is print and h._args == (1, 2) and not h.cancelled()
    assert repr(h).startswith("<Handle print(1, 2)")
    assert t.when() == t._when and t._scheduled
    assert repr(t).startswith(f"<TimerHandle when={t.when()!r} print()")
    h.cancel()
    assert h.cancelled() and h._callback is None and h._args is None
    assert repr(h) == "<Handle cancelled>"


def test_timer_cancel_is_counted_once_and_swept_from_the_top(lp):
    t = lp.call_later(0.0, print)
    t.cancel()
    t.cancel()
    assert lp._timer_cancelled_count == 1 and len(lp._scheduled) == 1
    lp.call_soon(lambda: None)  # else the iteration would wait forever
    lp._run_once()
    assert lp._timer_cancelled_count == 0 and len(lp._scheduled) == 0
    assert not t._scheduled


def test_many_cancelled_timers_are_swept_from_the_whole_heap(lp):
    keep = lp.call_later(1000, print)
    timers = [lp.call_later(100 + i, print) for i in range(300)]
    for timer in timers:
        timer.cancel()
    lp.call_soon(lambda: None)  # the iteration does not wait
    lp._run_once()
    assert list(lp._scheduled) == [keep]
    assert lp._timer_cancelled_count == 0
    assert not any(timer._scheduled for timer in timers)


def test_timers_with_the_same_deadline_run_in_scheduling_order(lp):
    seen: list[int] = []
    when = lp.time() - 1
    for i in range(50):
        lp.call_at(when, seen.append, i)
    lp._run_once()
    assert seen == list(range(50))


def test_scheduled_view_indexes_earliest_first(lp):
    late = lp.call_later(20, print)
    early = lp.call_later(10, print)
    assert lp._scheduled[0] is early and lp._scheduled[-1] is late
    with pytest.raises(IndexError):
        lp._scheduled[2]


def test_ready_view_supports_the_deque_operations_asyncio_uses(lp):
    a = lp.call_soon(print)
    b = asyncio.Handle(print, (), lp)
    lp._ready.appendleft(b)
    assert len(lp._ready) == 2 and list(lp._ready) == [b, a]
    assert lp._ready.popleft() is b
    lp._ready.extendleft([b])
    lp._ready.append(b)
    assert list(lp._ready) == [b, a, b]
    lp._ready.clear()
    assert not lp._ready
    with pytest.raises(IndexError):
        lp._ready.popleft()


def test_stdlib_handles_run_from_the_native_queue(lp):
    seen: list[str] = []
    lp._add_callback(asyncio.Handle(seen.append, ("stdlib",), lp))
    cancelled = asyncio.Handle(seen.append, ("no",), lp)
    cancelled.cancel()
    lp._add_callback(cancelled)
    lp._ready.append(cancelled)  # cancelled after queueing: skipped too
    lp._run_once()
    assert seen == ["stdlib"]


def test_callbacks_run_in_the_context_they_were_scheduled_in(lp):
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")
    seen: list[tuple[str, str]] = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "given")
    var.set("current")
    lp.call_soon(lambda: seen.append(("soon", var.get())))
    lp.call_soon(lambda: seen.append(("ctx", var.get())), context=ctx)
    lp.call_later(0, lambda: seen.append(("later", var.get())))
    var.set("changed after scheduling")
    lp.run_until_complete(asyncio.sleep(0.01))
    assert sorted(seen) == [("ctx", "given"), ("later", "current"), ("soon", "current")]


def test_a_callback_error_goes_to_the_exception_handler(lp):
    reports: list[dict[str, Any]] = []
    lp.set_exception_handler(lambda _loop, context: reports.append(context))

    def fail(x: int) -> None:
        raise ValueError(x)

    h = lp.call_soon(fail, 7)
    after = lp.call_soon(lambda: None)
    lp._run_once()
    assert len(reports) == 1 and reports[0]["handle"] is h
    assert isinstance(reports[0]["exception"], ValueError)
    assert reports[0]["message"].startswith("Exception in callback ")
    assert "fail(7)" in reports[0]["message"]
    assert not lp._ready and after is not None


def test_an_already_entered_context_is_reported_not_run(lp):
    reports: list[dict[str, Any]] = []
    lp.set_exception_handler(lambda _loop, context: reports.append(context))
    ctx = contextvars.copy_context()
    ctx.run(lambda: (lp.call_soon(print, context=ctx), lp._run_once()))
    assert len(reports) == 1 and isinstance(reports[0]["exception"], RuntimeError)


def test_system_exit_leaves_the_iteration_with_the_rest_queued(lp):
    seen: list[str] = []

    def leave() -> None:
        raise SystemExit(3)

    lp.call_soon(leave)
    lp.call_soon(seen.append, "next")
    with pytest.raises(SystemExit):
        lp._run_once()
    assert seen == [] and len(lp._ready) == 1
    lp._run_once()
    assert seen == ["next"]


def test_with_an_owner_system_exit_is_handed_over_and_the_hook_runs(lp):
    escaped: list[BaseException] = []
    hooks: list[int] = []

    class Owner:
        stopping = False

        def escaped(self, exc: BaseException) -> None:
            escaped.append(exc)

        def signal_handler_removed(self, sig: int) -> None:
            raise AssertionError(sig)

    lp._owner = Owner()
    lp._iteration_hook = lambda: hooks.append(1)
    lp.call_soon(sys.exit, 4)
    lp._run_once()
    assert [type(e) for e in escaped] == [SystemExit] and hooks == [1]
    lp._owner = None
    lp._iteration_hook = None


def test_debug_mode_records_where_handles_were_created(lp):
    lp.set_debug(True)
    h = lp.call_soon(print)
    t = lp.call_later(1, print)
    this = sys._getframe().f_code.co_name
    assert h._source_traceback[-1].name == this
    assert t._source_traceback[-1].name == this
    assert "created at" in repr(h)
    with pytest.raises(TypeError):
        lp.call_soon(asyncio.sleep)  # a coroutine function
    t.cancel()
    assert t._repr is not None and "when=" in repr(t)


def test_debug_mode_warns_about_slow_callbacks(lp, caplog):
    import time

    lp.set_debug(True)
    lp.slow_callback_duration = 0.01
    lp.call_soon(time.sleep, 0.03)
    with caplog.at_level("WARNING", logger="asyncio"):
        lp._run_once()
    assert any("Executing <Handle sleep(0.03)" in r.getMessage() for r in caplog.records)
    assert lp._current_handle is None


def test_closed_loop_refuses_to_schedule(lp):
    lp.close()
    for schedule in (lambda: lp.call_soon(print), lambda: lp.call_later(1, print),
                     lambda: lp.call_at(1, print)):
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            schedule()
    with pytest.raises(TypeError):
        lp.call_at(None, print)


def test_call_later_rejects_none(lp):
    with pytest.raises(TypeError, match="delay must not be None"):
        lp.call_later(None, print)


def test_call_soon_threadsafe_from_threads_wakes_the_loop(lp):
    async def main() -> int:
        done = lp.create_future()
        count = [0]

        def bump() -> None:
            count[0] += 1
            if count[0] == 400:
                done.set_result(None)

        def worker() -> None:
            for _ in range(100):
                lp.call_soon_threadsafe(bump)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        await asyncio.wait_for(done, 10)
        for t in threads:
            t.join()
        return count[0]

    assert lp.run_until_complete(main()) == 400


def test_a_subclass_clock_is_used_by_the_core():
    class Shifted(erlang.ErlangEventLoop):
        def time(self) -> float:
            return super().time() + 1000.0

    loop = Shifted()
    try:
        t = loop.call_later(1, print)
        assert t.when() > erlang.ErlangEventLoop.time(loop) + 1000
        assert loop._core_time_is_native() is False
    finally:
        loop.close()


def test_the_native_clock_is_time_monotonic(lp):
    import time

    before = time.monotonic()
    now = lp.time()
    assert before <= now <= time.monotonic()
    assert lp._core_time_is_native() is True


def test_nested_iterations_run_other_callbacks_and_keep_the_outer_count(lp):
    seen: list[str] = []

    def outer() -> None:
        before = _loop.ready_count(lp)
        lp.call_soon(seen.append, "nested")
        _loop.run_nested_once(lp, 0)
        _loop.pad_ready(lp, before)
        seen.append("outer done")

    lp.call_soon(outer)
    lp.call_soon(seen.append, "second")
    lp._run_once()
    assert seen == ["second", "nested", "outer done"]


def test_a_loop_in_a_cycle_is_collected():
    loop = erlang.ErlangEventLoop()
    loop.call_soon(loop.stop)  # loop -> handle -> loop
    loop.call_later(100, print, loop)
    ref = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert ref() is None


def test_fallback_flag_selects_the_python_loop():
    code = ("import erlang, asyncio; l = erlang.new_event_loop(); "
            "print(type(l).__name__, type(l.call_soon(print)).__module__); l.close()")
    out = {}
    for flag in ("native", "selector"):
        env = dict(os.environ, PYPORT_LOOP=flag)
        out[flag] = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                   capture_output=True, text=True).stdout.split()
    assert out["native"] == ["ErlangEventLoop", "_pyport"]
    assert out["selector"] == ["ErlangSelectorEventLoop", "asyncio.events"]
    env = dict(os.environ, PYPORT_LOOP="bogus")
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "PYPORT_LOOP" in bad.stderr
