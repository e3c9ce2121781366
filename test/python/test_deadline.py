"""The watchdog for plain task functions (src/watchdog.rs): a function
still running at its deadline gets ``_pyport.TaskDeadline`` raised in its
frame, in this process (run inside the executable, main thread) and in the
port executable, where the task alone times out."""

from __future__ import annotations

import os
import textwrap
import threading
import time

import _pyport
import pytest

from porthelp import make_ref, task
from test_port_exe import PortProcess


def spin() -> None:
    while True:
        pass


def spin_for(seconds: float) -> int:
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def test_task_deadline_is_not_an_exception():
    assert issubclass(_pyport.TaskDeadline, BaseException)
    assert not issubclass(_pyport.TaskDeadline, Exception)


def test_a_spinning_function_is_interrupted_at_its_deadline():
    start = time.monotonic()
    token = _pyport.arm_deadline(0.1)
    try:
        with pytest.raises(_pyport.TaskDeadline):
            spin()
    finally:
        _pyport.disarm_deadline(token)
    assert 0.09 <= time.monotonic() - start < 5


def test_a_disarmed_deadline_never_fires():
    token = _pyport.arm_deadline(0.05)
    assert spin_for(0.01) > 0
    _pyport.disarm_deadline(token)
    assert spin_for(0.2) > 0  # no TaskDeadline here


def test_nested_arms_interrupt_the_innermost_then_the_outer():
    outer = _pyport.arm_deadline(0.15)
    try:
        inner = _pyport.arm_deadline(0.05)
        try:
            with pytest.raises(_pyport.TaskDeadline):
                spin()
        finally:
            _pyport.disarm_deadline(inner)
        with pytest.raises(_pyport.TaskDeadline):
            spin()
    finally:
        _pyport.disarm_deadline(outer)


def test_arming_outside_the_main_thread_arms_nothing():
    tokens: list[int] = []
    worker = threading.Thread(target=lambda: tokens.append(_pyport.arm_deadline(0.0)))
    worker.start()
    worker.join()
    assert tokens == [0]
    _pyport.disarm_deadline(0)
    assert spin_for(0.05) > 0


@pytest.fixture
def modules(tmp_path):
    (tmp_path / "deadline_tasks.py").write_text(textwrap.dedent("""
        import asyncio, time
        import erlang

        def spin():
            while True:
                pass

        def quick(x):
            return x

        async def nap(seconds, value):
            await asyncio.sleep(seconds)
            return value

        def call_erlang(name):
            return erlang.call(name)

        async def spin_later(seconds):
            await asyncio.sleep(0.05)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
            return "fine"
    """))
    return tmp_path


def test_the_port_times_out_a_spinning_task_and_keeps_serving(modules):
    port = PortProcess("--path", str(modules))
    try:
        assert port.recv()[0] == "ready"
        bystander, spinner, after = make_ref(1), make_ref(2), make_ref(3)
        port.send(task(bystander, "deadline_tasks", "nap", [0.5, "fine"]),
                  task(spinner, "deadline_tasks", "spin", deadline_ms=200))
        assert port.recv() == ("result", spinner, ("error", "timeout"))
        port.send(task(after, "deadline_tasks", "quick", [7], deadline_ms=5000))
        assert {port.recv(), port.recv()} == {("result", bystander, ("ok", "fine")),
                                              ("result", after, ("ok", 7))}
        assert port.proc.poll() is None
    finally:
        port.cleanup()


def test_tasks_run_during_a_blocking_erlang_call_are_not_interrupted(modules):
    """A plain function waiting in erlang.call runs other tasks in nested
    loop iterations; its deadline passing meanwhile must not raise in them:
    the watchdog is suspended there and the bridge times the caller out."""
    port = PortProcess("--path", str(modules))
    try:
        assert port.recv()[0] == "ready"
        waiting, spinning = make_ref(1), make_ref(2)
        port.send(task(waiting, "deadline_tasks", "call_erlang", ["nobody"], deadline_ms=200),
                  task(spinning, "deadline_tasks", "spin_later", [0.5]))
        results = {}
        while len(results) < 2:
            message = port.recv()
            if message[0] == "result":
                results[message[1]] = message[2]
        assert results == {waiting: ("error", "timeout"), spinning: ("ok", "fine")}
        assert port.proc.poll() is None
    finally:
        port.cleanup()


def test_exec_and_eval_past_their_deadline_are_interrupted(modules):
    """exec/eval carry deadline_ms as tasks do: spinning code is interrupted,
    its caller gets timeout, a bystander its result."""
    from erlang import Atom

    port = PortProcess("--path", str(modules))
    try:
        assert port.recv()[0] == "ready"
        bystander, run, ev, after = make_ref(1), make_ref(2), make_ref(3), make_ref(4)
        port.send(task(bystander, "deadline_tasks", "nap", [0.5, "fine"]),
                  (Atom("exec"), run, "while True:\n    pass\n",
                   {Atom("deadline_ms"): 200}),
                  (Atom("eval"), ev, "sum(0 for _ in iter(int, 1))",
                   {Atom("deadline_ms"): 100, Atom("locals"): {}}))
        assert port.recv() == ("result", run, ("error", "timeout"))
        assert port.recv() == ("result", ev, ("error", "timeout"))
        port.send((Atom("eval"), after, "6 * 7", {Atom("deadline_ms"): 5000}))
        assert {port.recv(), port.recv()} == {("result", bystander, ("ok", "fine")),
                                              ("result", after, ("ok", 42))}
        assert port.proc.poll() is None
    finally:
        port.cleanup()


def test_step_bounded_interrupts_a_spinning_step_not_the_waits():
    """StepBounded arms the watchdog for each step of a coroutine: awaiting
    costs nothing, a step that spins gets TaskDeadline."""
    import asyncio

    from erlang._deadline import StepBounded, TaskDeadline

    async def naps_then_spins() -> str:
        for _ in range(3):
            await asyncio.sleep(0.05)  # 0.15 s in all, each step short
        spin()
        return "never"

    async def naps() -> str:
        await asyncio.sleep(0.2)
        return "slept"

    async def main() -> None:
        assert await StepBounded(naps(), 0.1) == "slept"
        task = asyncio.get_running_loop().create_task(StepBounded(naps_then_spins(), 0.1))
        with pytest.raises(TaskDeadline):
            await task
        # a limit given as a function is asked before each step; None: unbounded
        assert await StepBounded(naps(), lambda: None) == "slept"

    asyncio.run(main())
    assert spin_for(0.05) > 0  # nothing left armed
