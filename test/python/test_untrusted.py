"""Task code is untrusted (docs/DESIGN.md, "The trust boundary"): what it
raises, stopping or closing the port's loop, SIGINT, fork() -- through a
PortServer fed by pipes, without Erlang. The executable's side (fds 3/4,
the package's path) is in test_port_exe.py."""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import sys

import pytest

import erlang
from erlang._loop import CLOSE_REFUSED, STOP_REFUSED
from erlang._selector import PollerSelector
from erlang._wire import python_error
from porthelp import Contains, PortHarness, make_ref, task

THIS = __name__


# -- task fixtures (run by the harness as THIS.<name>) ----------------------------


class Custom(BaseException):
    pass


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


class BadQualname(Exception):
    pass


def raise_(kind: str) -> None:
    raise {"custom": Custom("custom"), "exit": SystemExit(3),
           "interrupt": KeyboardInterrupt(), "genexit": GeneratorExit("g"),
           "badstr": BadStr()}[kind]


async def raise_async(kind: str) -> None:
    await asyncio.sleep(0)
    raise_(kind)


def stop_loop() -> None:
    asyncio.get_event_loop().stop()


async def close_loop_async() -> None:
    asyncio.get_running_loop().close()


async def nap(seconds: float, value: object) -> object:
    await asyncio.sleep(seconds)
    return value


def fork_and_return() -> str:
    return "parent" if os.fork() else "child"


async def fork_in_coroutine() -> str:
    await asyncio.sleep(0)
    pid = os.fork()
    if pid == 0:
        return "child"
    os.waitpid(pid, 0)
    return "parent"


def fork_and_exit() -> int:
    pid = os.fork()
    if pid == 0:
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def fork_runs_a_new_loop() -> int:
    """The child runs asyncio.run on a loop of its own, then exits with
    what it computed (+1 for an answer of 42)."""
    pid = os.fork()
    if pid == 0:
        async def child() -> int:
            await asyncio.sleep(0.01)
            return 41
        try:
            code = asyncio.run(child()) + 1
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.fixture
def port():
    harness = PortHarness().start()
    try:
        yield harness
    finally:
        harness.close()


# -- the error builder ------------------------------------------------------------


def test_error_of_an_unprintable_exception_has_fallbacks():
    try:
        raise_("badstr")
    except BadStr as exc:
        tag, name, message, tb = python_error(exc)
    assert (tag, name, message) == (erlang.Atom("python"), "BadStr", "<unprintable BadStr object>")
    assert "raise_" in tb and "BadStr" in tb


def test_error_type_is_the_qualified_name():
    class Inner(Exception):
        pass
    _, name, message, _ = python_error(Inner("x"), with_traceback=False)
    assert name == "test_error_type_is_the_qualified_name.<locals>.Inner"
    assert message == "x"


def test_error_traceback_formatting_that_raises_falls_back(monkeypatch):
    import traceback

    def broken(*_a: object, **_k: object) -> list[str]:
        raise RuntimeError("formatting failed")
    monkeypatch.setattr(traceback, "format_exception", broken)
    try:
        raise_("custom")
    except Custom as exc:
        _, name, message, tb = python_error(exc)
    assert (name, message) == ("Custom", "custom")
    assert tb.startswith("Traceback (most recent call last):") and tb.endswith("Custom: custom\n")


# -- exceptions that are not Exception ------------------------------------------------


@pytest.mark.parametrize("kind,name,message", [
    ("custom", "Custom", "custom"), ("exit", "SystemExit", "3"),
    ("interrupt", "KeyboardInterrupt", ""), ("genexit", "GeneratorExit", "g"),
    ("badstr", "BadStr", "<unprintable BadStr object>")])
@pytest.mark.parametrize("func", ["raise_", "raise_async"])
def test_every_exception_is_the_task_error(port, func, kind, name, message):
    bystander = make_ref(1)
    port.send(task(bystander, THIS, "nap", [0.2, "ok"]))
    assert port.call(THIS, func, [kind]) == ("error", ("python", name, message, Contains(func)))
    assert port.recv() == ("result", bystander, ("ok", "ok"))
    assert port.thread.is_alive()


def test_exec_and_eval_raising_system_exit_answer_the_caller(port):
    id1, id2 = make_ref(2), make_ref(3)
    port.send((erlang.Atom("exec"), id1, "import sys\nsys.exit(5)"),
              (erlang.Atom("eval"), id2, "(_ for _ in ()).throw(KeyboardInterrupt)"))
    assert port.recv() == ("result", id1, ("error", ("python", "SystemExit", "5", Contains("exec"))))
    assert port.recv()[2][1][1] == "KeyboardInterrupt"
    assert port.call(THIS, "nap", [0, 1]) == ("ok", 1)


def test_spawned_system_exit_is_logged_and_the_loop_goes_on(port):
    port.send(task(make_ref(4), THIS, "raise_async", ["exit"], reply=False))
    assert port.recv() == ("log", "error", "erlang", Contains("failed: SystemExit: 3"))
    assert port.call(THIS, "nap", [0, 2]) == ("ok", 2)


async def exit_from_a_python_task() -> str:
    asyncio.get_running_loop().create_task(raise_async("exit"))
    await asyncio.sleep(0.05)
    return "after"


def test_system_exit_of_a_task_python_created_is_logged(port):
    id = make_ref(6)
    port.send(task(id, THIS, "exit_from_a_python_task"))
    got = [port.recv(), port.recv()]
    assert ("log", "warning", "erlang", Contains("SystemExit raised in a task")) in got
    assert ("result", id, ("ok", "after")) in got


# -- stop() and close() from tasks -----------------------------------------------------


def test_loop_stop_and_close_from_tasks_are_refused(port):
    assert port.call(THIS, "stop_loop", []) == ("error", ("python", "RuntimeError", STOP_REFUSED,
                                                          Contains("stop_loop")))
    assert port.call(THIS, "close_loop_async", []) == (
        "error", ("python", "RuntimeError", CLOSE_REFUSED, Contains("close_loop_async")))
    # The iteration hook is still installed: replies keep flowing.
    assert port.call(THIS, "nap", [0.01, 3]) == ("ok", 3)
    assert not port.loop.is_closed()


def test_the_server_still_stops_and_closes_its_loop(port):
    port.send((erlang.Atom("stop"),))
    port.join()
    assert port.rc == 0 and port.loop.is_closed()
    assert port.loop._owner is None


def test_a_loop_without_owner_keeps_the_stdlib_behaviour():
    loop = erlang.new_event_loop()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(raise_async("interrupt"))
        loop.call_soon(loop.stop)
        loop.run_forever()  # stop() works: this returns
    finally:
        loop.close()
    assert loop.is_closed()


# -- fork -------------------------------------------------------------------------


def test_forked_child_returning_to_the_loop_exits_without_answering(port):
    assert port.call(THIS, "fork_and_return", []) == ("ok", "parent")
    assert port.reader.nothing_within(0.3)  # no second answer, from the child
    assert port.call(THIS, "fork_in_coroutine", []) == ("ok", "parent")
    assert port.reader.nothing_within(0.3)
    big = "z" * (200 << 10)
    ids = [make_ref(100 + i) for i in range(20)]
    port.send(*(task(i, THIS, "nap", [0, big]) for i in ids))
    assert sorted((port.recv() for _ in ids), key=lambda r: ids.index(r[1])) == [
        ("result", i, ("ok", big)) for i in ids]


def test_forked_child_exiting_leaves_the_parent_serving(port):
    assert port.call(THIS, "fork_and_exit", []) == ("ok", 0)
    assert port.call(THIS, "nap", [0.05, "timers"]) == ("ok", "timers")
    port.send(task(make_ref(5), THIS, "nap", [0, "x"]))
    assert port.recv()[2] == ("ok", "x")


def test_forked_child_can_run_a_loop_of_its_own(port):
    assert port.call(THIS, "fork_runs_a_new_loop", []) == ("ok", 42)


def test_a_detached_selector_leaves_the_parent_registrations_alone():
    r, w = os.pipe()
    sel = PollerSelector()
    try:
        sel.register(r, selectors.EVENT_READ)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                sel.detach()
                assert not sel.get_map()  # registrations forgotten here...
                try:  # ...and beyond the reach of EPOLL_CTL_DEL
                    sel._poller.unregister(r)
                except OSError:
                    code = 0
                sel.close()
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        os.write(w, b"!")
        assert [key.fd for key, _ in sel.select(1.0)] == [r]
    finally:
        sel.close()
        os.close(r)
        os.close(w)


# -- SIGINT -----------------------------------------------------------------------------


def test_sigint_is_logged_not_obeyed_in_the_main_thread():
    """Signal handlers need the main thread: serve from it here."""
    import _pyport

    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    channel = _pyport.Channel(in_r, out_w)
    os.close(in_r)
    os.close(out_w)
    loop = erlang.new_event_loop()
    from erlang._server import PortServer
    server = PortServer(loop, channel)
    loop.call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
    loop.call_later(0.3, os.close, in_w)  # EOF ends the server
    previous = signal.getsignal(signal.SIGINT)
    try:
        assert server.serve_forever() == 0
    finally:
        signal.signal(signal.SIGINT, previous)
    from porthelp import FrameReader
    reader = FrameReader(out_r)
    try:
        assert reader.recv()[0] == "ready"
        assert reader.recv() == ("log", "warning", "erlang", Contains("SIGINT ignored"))
    finally:
        os.close(out_r)


# -- a loop that ends without Erlang asking ---------------------------------------------------


def _broken_hook() -> None:
    """Fails once: the shutdown that follows runs normally."""
    asyncio.get_event_loop()._iteration_hook = None  # type: ignore[attr-defined]
    raise RuntimeError("the iteration hook failed")


def break_the_loop() -> str:
    """Replace the port's iteration hook with one that raises: run_forever
    ends with an error nobody asked for (what a bug of the port would do)."""
    asyncio.get_event_loop()._iteration_hook = _broken_hook  # type: ignore[attr-defined]
    return "broken"


def test_a_loop_ending_by_itself_answers_no_one_cancelled():
    harness = PortHarness().start()
    bystander = make_ref(7)
    harness.send(task(bystander, THIS, "nap", [30, "never"]), task(make_ref(8), THIS, "break_the_loop"))
    harness.join()
    assert isinstance(harness.error, RuntimeError)
    harness.error = None
    # No `cancelled` for the bystander: nobody cancelled it, and Erlang
    # tells its caller when the process exits.
    got = []
    try:
        while True:
            got.append(harness.recv(0.3))
    except (TimeoutError, EOFError):
        pass
    assert all(reply[1] != bystander for reply in got if reply[0] == "result"), got
    harness.close()
