"""erlang.run / Runner / install / new_event_loop / sleep / spawn_task /
detect_mode, and the re-exported term types."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import sys
import threading
import time
import warnings

import pytest

import _pyport
import erlang
from conftest import TEST_TIMEOUT, run

# -- run, Runner, install, new_event_loop --------------------------------------------


def test_run_returns_the_result_on_an_erlang_loop():
    async def main():
        await asyncio.sleep(0.01)
        return type(asyncio.get_running_loop()), 42

    loop_type, value = erlang.run(main())
    assert loop_type is erlang.ErlangEventLoop
    assert value == 42


def test_run_propagates_exceptions_and_closes_the_loop():
    loops = []

    async def main():
        loops.append(asyncio.get_running_loop())
        raise KeyError("nope")

    with pytest.raises(KeyError):
        erlang.run(main())
    assert loops[0].is_closed()


def test_run_debug_flag():
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert erlang.run(main(), debug=True) is True
    assert erlang.run(main(), debug=False) is False


def test_run_cancels_leftover_tasks():
    cancelled = []

    async def background():
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        asyncio.create_task(background())
        await asyncio.sleep(0)

    erlang.run(main())
    assert cancelled == [True]


def test_run_inside_a_running_loop_is_refused():
    async def main():
        coro = asyncio.sleep(0)
        try:
            erlang.run(coro)
        finally:
            coro.close()

    with pytest.raises(RuntimeError):
        erlang.run(main())


def test_asyncio_runner_with_loop_factory():
    async def main(n):
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()), n

    with asyncio.Runner(loop_factory=erlang.new_event_loop) as runner:
        assert runner.run(main(1)) == (erlang.ErlangEventLoop, 1)
        assert runner.run(main(2)) == (erlang.ErlangEventLoop, 2)  # same loop again
        assert isinstance(runner.get_loop(), erlang.ErlangEventLoop)


def test_new_event_loop_manual_management():
    loop = erlang.new_event_loop()
    assert isinstance(loop, erlang.ErlangEventLoop)
    asyncio.set_event_loop(loop)
    try:
        assert loop.run_until_complete(asyncio.sleep(0.001, "done")) == "done"
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    other = erlang.new_event_loop()
    assert other is not loop
    other.close()


@pytest.fixture
def restore_policy():
    old = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(old)


def test_install_makes_asyncio_run_use_erlang_loop(restore_policy):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        erlang.install()
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    if sys.version_info >= (3, 12):
        assert len(deprecations) == 1
    else:
        assert deprecations == []
    assert isinstance(asyncio.get_event_loop_policy(), erlang.ErlangEventLoopPolicy)

    async def main():
        return type(asyncio.get_running_loop())

    assert asyncio.run(main()) is erlang.ErlangEventLoop
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, erlang.ErlangEventLoop)
    finally:
        loop.close()


def test_policy_keeps_subprocess_support(restore_policy):
    erlang.install()

    async def main():
        proc = await asyncio.create_subprocess_exec("true")
        return await proc.wait()

    assert asyncio.run(main()) == 0


# -- sleep -----------------------------------------------------------------------------


def test_sleep_in_async_code_yields_to_the_loop():
    order = []

    async def other():
        order.append("other ran")

    async def main():
        asyncio.get_running_loop().call_soon(order.append, "callback")
        t = asyncio.create_task(other())
        aw = erlang.sleep(0.01)
        assert asyncio.iscoroutine(aw)
        await aw
        order.append("after sleep")
        await t

    erlang.run(main())
    assert order == ["callback", "other ran", "after sleep"]


def test_sleep_in_sync_code_blocks():
    t0 = time.monotonic()
    done = erlang.sleep(0.05)
    assert time.monotonic() - t0 >= 0.045
    assert not asyncio.iscoroutine(done)


def test_sleep_in_sync_code_called_from_the_loop_blocks():
    # A sync function that the port (or any callback) runs inside the loop
    # thread: blocking is what sync code asked for, and nothing is left
    # un-awaited.
    def sync_handler():
        t0 = time.monotonic()
        erlang.sleep(0.02)
        return time.monotonic() - t0

    async def main():
        return sync_handler()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a never-awaited coroutine would fail
        assert erlang.run(main()) >= 0.018
        gc.collect()


def test_sleep_result_of_sync_call_is_awaitable():
    done = erlang.sleep(0)

    async def main():
        await done  # already complete: returns at once
        return "ok"

    assert erlang.run(main()) == "ok"


def test_sleep_negative_is_zero():
    erlang.sleep(-1)

    async def main():
        await erlang.sleep(-1)

    erlang.run(main())


# -- spawn_task --------------------------------------------------------------------------


async def _double(x, started=None):
    if started is not None:
        started.set()
    await asyncio.sleep(0.001)
    return 2 * x


def test_spawn_task_from_async_code_returns_a_task():
    async def main():
        task = erlang.spawn_task(_double(21), name="doubler")
        assert isinstance(task, asyncio.Task)
        assert task.get_name() == "doubler"
        return await task

    assert erlang.run(main()) == 42


def test_spawn_task_from_sync_code_in_a_loop_callback():
    results = []

    def sync_callback():
        # No coroutine is running here, but the loop is: the task goes on it.
        task = erlang.spawn_task(_double(5))
        task.add_done_callback(lambda t: results.append(t.result()))

    async def main():
        asyncio.get_running_loop().call_soon(sync_callback)
        for _ in range(100):
            if results:
                break
            await asyncio.sleep(0.001)

    erlang.run(main())
    assert results == [10]


def test_spawn_task_from_a_thread_without_loop_uses_the_main_loop():
    # The ErlangEventLoop running in the main thread receives the task.
    outcome = {}

    def worker(loop):
        fut = erlang.spawn_task(_double(8), name="from-thread")
        outcome["type"] = type(fut)
        outcome["result"] = fut.result(timeout=TEST_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)

    loop = erlang.new_event_loop()
    try:
        t = threading.Thread(target=worker, args=(loop,))
        loop.call_soon(t.start)
        guard = loop.call_later(TEST_TIMEOUT, loop.stop)
        loop.run_forever()
        guard.cancel()
        t.join()
    finally:
        loop.close()
    assert outcome == {"type": concurrent.futures.Future, "result": 16}


def test_spawn_task_cross_thread_cancel_cancels_the_task():
    state = {}

    async def forever(started):
        started.set()
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    def worker(loop):
        started = threading.Event()

        async def wrapped():
            await forever(started)

        fut = erlang.spawn_task(wrapped())
        assert started.wait(TEST_TIMEOUT)
        state["cancel"] = fut.cancel()
        with pytest.raises(concurrent.futures.CancelledError):
            fut.result(timeout=TEST_TIMEOUT)
        loop.call_soon_threadsafe(lambda: loop.call_later(0.05, loop.stop))

    loop = erlang.new_event_loop()
    try:
        t = threading.Thread(target=worker, args=(loop,))
        loop.call_soon(t.start)
        guard = loop.call_later(TEST_TIMEOUT, loop.stop)
        loop.run_forever()
        guard.cancel()
        t.join()
    finally:
        loop.close()
    assert state == {"cancel": True, "cancelled": True}


def test_spawn_task_cross_thread_exception():
    async def fail():
        raise ValueError("bad")

    errors = []

    def worker(loop):
        fut = erlang.spawn_task(fail())
        try:
            fut.result(timeout=TEST_TIMEOUT)
        except ValueError as exc:
            errors.append(str(exc))
        loop.call_soon_threadsafe(loop.stop)

    loop = erlang.new_event_loop()
    try:
        t = threading.Thread(target=worker, args=(loop,))
        loop.call_soon(t.start)
        loop.run_forever()
        t.join()
    finally:
        loop.close()
    assert errors == ["bad"]


def test_spawn_task_without_any_loop_is_refused_cleanly():
    coro = _double(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="no running event loop"):
            erlang.spawn_task(coro)
        assert coro.cr_frame is None  # closed: no "never awaited" warning
        gc.collect()


def test_spawn_task_rejects_non_coroutines():
    with pytest.raises(TypeError):
        erlang.spawn_task(lambda: None)  # type: ignore[arg-type]


# -- detect_mode, types ---------------------------------------------------------------


def test_detect_mode():
    mode = erlang.detect_mode()
    assert isinstance(mode, erlang.ExecutionMode)
    if sys.version_info < (3, 12):
        assert mode is erlang.ExecutionMode.SHARED_GIL
    assert {m.name for m in erlang.ExecutionMode} == {"SHARED_GIL", "SUBINTERP", "FREE_THREADED"}
    assert erlang.ExecutionMode.SHARED_GIL.value == "shared_gil"


def test_term_types_are_the_native_ones():
    assert erlang.Atom is _pyport.Atom
    assert erlang.Pid is _pyport.Pid
    assert erlang.Ref is _pyport.Ref
    ok = erlang.Atom("ok")
    assert ok == erlang.Atom("ok") and hash(ok) == hash(erlang.Atom("ok"))
    assert ok.name == "ok"
    assert _pyport.decode(_pyport.encode((ok, [1, "x"]))) == ("ok", [1, "x"])


def test_public_api_is_complete():
    for name in ("run", "new_event_loop", "install", "sleep", "spawn_task", "detect_mode",
                 "ExecutionMode", "ErlangEventLoop", "ErlangEventLoopPolicy", "Atom", "Pid",
                 "Ref"):
        assert name in erlang.__all__
        assert hasattr(erlang, name)
