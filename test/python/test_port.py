"""PortServer without Erlang: packets in through a pipe, replies out of another.

Packets are framed exactly as Erlang's ``{packet, 4}`` port does and encoded
with ``_pyport.encode``; replies are decoded with ``_pyport.decode`` (atoms
come back as ``str``).
"""

from __future__ import annotations

import os
import sys
import time

import pytest

import _pyport
import erlang
import pyport_tasks
from erlang._logging import ChannelLogHandler
from erlang._server import PortServer
from porthelp import Atom, Contains, PortHarness, frame, make_ref, task


@pytest.fixture
def port():
    pyport_tasks.RECORD.clear()
    harness = PortHarness().start()
    try:
        yield harness
    finally:
        harness.close()


def test_ready_is_the_first_packet(port):
    tag, info = port.ready
    assert tag == "ready"
    extra = {"python_lib", "python_lib_built", "python_lib_same"}
    assert {k: v for k, v in info.items() if k not in extra} == {
        "protocol": 3, "python": sys.version.split()[0],
        "os_pid": os.getpid(), "mode": "shared_gil"}
    # erlang._ops: the libpython mapped is the one built against.
    assert info["python_lib_same"] is True
    assert "libpython" in info["python_lib"]


def test_sync_result(port):
    assert port.call("pyport_tasks", "add", [1, 2]) == ("ok", 3)


def test_binary_module_and_function_names(port):
    id = make_ref(1)
    port.send((Atom("task"), id, "pyport_tasks", "add", [2, 3], {}, {}))
    assert port.recv() == ("result", id, ("ok", 5))


def test_args_and_kwargs_are_converted(port):
    reply = port.call("pyport_tasks", "echo", [1, 2.5, [True, None]],
                      {Atom("key"): {"nested": (1, 2)}})
    assert reply == ("ok", [[1, 2.5, [True, None]], {"key": {"nested": (1, 2)}}])


def test_dotted_function_name(port):
    assert port.call("pyport_tasks", "Calc.triple", [4]) == ("ok", 12)
    assert port.call("os", "path.join", ["a", "b"]) == ("ok", "a/b")


def test_async_result(port):
    assert port.call("pyport_tasks", "async_add", [20, 22], {Atom("delay"): 0.01}) == ("ok", 42)


def test_integer_ids_are_echoed(port):
    port.send(task(7, "pyport_tasks", "add", [1, 1]))
    assert port.recv() == ("result", 7, ("ok", 2))


def test_many_packets_in_one_write_all_answered_in_order(port):
    ids = [make_ref(100 + i) for i in range(50)]
    port.send(*(task(id, "pyport_tasks", "add", [i, i]) for i, id in enumerate(ids)))
    replies = [port.recv() for _ in ids]
    assert replies == [("result", id, ("ok", 2 * i)) for i, id in enumerate(ids)]


def test_partial_frames_are_reassembled(port):
    data = frame(task(1, "pyport_tasks", "add", [40, 2])) + frame(task(2, "pyport_tasks", "add", [1, 2]))
    port.write(data[:3])
    time.sleep(0.01)
    port.write(data[3:17])
    time.sleep(0.01)
    port.write(data[17:])
    assert port.recv() == ("result", 1, ("ok", 42))
    assert port.recv() == ("result", 2, ("ok", 3))


def test_exception_is_a_python_error_with_traceback(port):
    status, (kind, type_name, message, tb) = port.call("pyport_tasks", "fail", ["bad input"])
    assert (status, kind, type_name, message) == ("error", "python", "ValueError", "bad input")
    assert "Traceback" in tb and "pyport_tasks.py" in tb and "fail" in tb


def test_async_exception(port):
    status, (kind, type_name, message, tb) = port.call("pyport_tasks", "async_fail", ["k"])
    assert (status, kind, type_name, message) == ("error", "python", "KeyError", "'k'")
    assert "async_fail" in tb


def test_unknown_module(port):
    status, (kind, type_name, message, _) = port.call("no_such_module_xyz", "f")
    assert (status, kind, type_name) == ("error", "python", "ModuleNotFoundError")
    assert "no_such_module_xyz" in message


def test_unknown_function(port):
    status, (_, type_name, message, _) = port.call("pyport_tasks", "no_such_function")
    assert (status, type_name) == ("error", "AttributeError")
    assert "no_such_function" in message


def test_not_callable(port):
    status, (_, type_name, message, _) = port.call("pyport_tasks", "not_callable")
    assert (status, type_name) == ("error", "TypeError")
    assert "not callable" in message


def test_wrong_arguments(port):
    status, (_, type_name, _, _) = port.call("pyport_tasks", "add", [1])
    assert (status, type_name) == ("error", "TypeError")


def test_unconvertible_sync_result_is_a_type_error(port):
    assert port.call("pyport_tasks", "unconvertible") == (
        "error", ("python", "TypeError", Contains("object"), ""))


def test_unconvertible_async_result_is_a_type_error(port):
    status, (kind, type_name, message, tb) = port.call("pyport_tasks", "async_unconvertible")
    assert (status, kind, type_name, tb) == ("error", "python", "TypeError", "")
    assert "set" in message


def test_server_goes_on_after_errors(port):
    port.call("pyport_tasks", "fail", ["x"])
    port.call("pyport_tasks", "unconvertible")
    port.call("nope_module", "f")
    assert port.call("pyport_tasks", "add", [1, 2]) == ("ok", 3)


def test_deadline_cancels_the_task_with_timeout(port):
    assert port.call("pyport_tasks", "forever", ["deadline"], deadline_ms=20) == ("error", "timeout")
    assert ("finally", "deadline") in pyport_tasks.RECORD  # the task really ended
    assert port.server.tasks.jobs == {}


def test_deadline_not_reached(port):
    assert port.call("pyport_tasks", "async_add", [1, 2], deadline_ms=5000) == ("ok", 3)
    assert port.call("pyport_tasks", "async_add", [1, 2], deadline_ms=Atom("infinity")) == ("ok", 3)


def test_deadline_does_not_apply_to_sync_results(port):
    assert port.call("pyport_tasks", "add", [1, 2], deadline_ms=0) == ("ok", 3)


def wait_for_record(item, timeout=10.0):
    deadline = time.monotonic() + timeout
    while item not in pyport_tasks.RECORD:
        assert time.monotonic() < deadline, f"{item!r} never recorded"
        time.sleep(0.001)


def test_cancel(port):
    id = make_ref(9)
    port.send(task(id, "pyport_tasks", "forever", ["cancel"]))
    wait_for_record(("started", "cancel"))
    port.send((Atom("cancel"), id))
    assert port.recv() == ("result", id, ("error", "cancelled"))
    assert ("finally", "cancel") in pyport_tasks.RECORD


def test_cancel_before_the_task_ran(port):
    id = make_ref(13)
    port.send(task(id, "pyport_tasks", "forever", ["never"]), (Atom("cancel"), id))
    assert port.recv() == ("result", id, ("error", "cancelled"))


def test_cancel_wins_even_if_the_task_swallows_it(port):
    id = make_ref(10)
    port.send(task(id, "pyport_tasks", "swallow_cancel"), (Atom("cancel"), id))
    assert port.recv() == ("result", id, ("error", "cancelled"))


def test_cancel_of_unknown_or_finished_task_is_ignored(port):
    port.send((Atom("cancel"), make_ref(11)))
    assert port.call("pyport_tasks", "add", [1, 2]) == ("ok", 3)
    assert port.reader.nothing_within(0.05)


def test_reply_false_success_sends_nothing(port):
    port.send(task(1, "pyport_tasks", "record", ["quiet"], reply=False),
              task(2, "pyport_tasks", "async_record", ["quiet async"], reply=False))
    assert port.call("pyport_tasks", "add", [0, 0]) == ("ok", 0)
    assert port.reader.nothing_within(0.05)
    assert pyport_tasks.RECORD[:2] == ["quiet", "quiet async"]


def test_reply_false_failure_is_logged(port):
    port.send(task(1, "pyport_tasks", "fail", ["spawned failure"], reply=False))
    tag, level, logger, message = port.recv()
    assert (tag, level, logger) == ("log", "error", "erlang")
    assert "pyport_tasks.fail" in message and "ValueError" in message
    assert "spawned failure" in message
    port.send(task(2, "pyport_tasks", "async_fail", ["async spawned"], reply=False))
    tag, level, logger, message = port.recv()
    assert (tag, level) == ("log", "error") and "KeyError" in message


def test_reply_false_timeout_is_logged(port):
    port.send(task(1, "pyport_tasks", "forever", reply=False, deadline_ms=10))
    tag, level, logger, message = port.recv()
    assert (tag, level, logger) == ("log", "error", "erlang")
    assert "timed out" in message


def test_bad_options(port):
    id = make_ref(12)
    port.send((Atom("task"), id, Atom("pyport_tasks"), "add", [1, 2], {}, [1]))
    assert port.recv()[2][1][:2] == ("python", "TypeError")
    status, (_, type_name, message, _) = port.call("pyport_tasks", "add", [1, 2],
                                                    deadline_ms="soon")
    assert (status, type_name) == ("error", "TypeError") and "deadline_ms" in message
    status, (_, type_name, _, _) = port.call("pyport_tasks", "add", 5)
    assert (status, type_name) == ("error", "TypeError")


def test_exec_and_eval_in_main(port):
    id1, id2, id3 = make_ref(21), make_ref(22), make_ref(23)
    try:
        port.send((Atom("exec"), id1, "import math\npyport_test_x = math.floor(41.5)"))
        assert port.recv() == ("result", id1, ("ok", None))
        port.send((Atom("eval"), id2, "pyport_test_x + 1"))
        assert port.recv() == ("result", id2, ("ok", 42))
        # Functions defined by exec can be called as tasks on __main__.
        port.send((Atom("exec"), id3, "def pyport_test_f(a):\n    return a * 2\n"))
        assert port.recv() == ("result", id3, ("ok", None))
        assert port.call("__main__", "pyport_test_f", [21]) == ("ok", 42)
    finally:
        main = sys.modules["__main__"]
        for name in ("pyport_test_x", "pyport_test_f", "math"):
            main.__dict__.pop(name, None)


def test_exec_and_eval_errors(port):
    id1, id2, id3 = make_ref(31), make_ref(32), make_ref(33)
    port.send((Atom("eval"), id1, "1 +"))
    assert port.recv()[2][1][:2] == ("python", "SyntaxError")
    port.send((Atom("exec"), id2, "raise RuntimeError('in exec')"))
    reply = port.recv()
    assert reply[2][1][:3] == ("python", "RuntimeError", "in exec")
    port.send((Atom("eval"), id3, "object()"))
    assert port.recv()[2] == ("error", ("python", "TypeError", Contains("object"), ""))


def test_unknown_message(port):
    port.send((Atom("bogus"), 1, 2))
    assert port.recv() == ("error", ("unknown_message", ("bogus", 1, 2)))
    port.send((Atom("task"), 1))  # known tag, wrong arity
    assert port.recv() == ("error", ("unknown_message", ("task", 1)))
    assert port.call("pyport_tasks", "add", [1, 2]) == ("ok", 3)


def test_bad_packet_is_reported_and_skipped(port):
    garbage = b"\x83\xff\x00\x01"
    port.write(len(garbage).to_bytes(4, "big") + garbage)
    tag, (what, _reason) = port.recv()
    assert (tag, what) == ("error", "bad_packet")
    assert port.call("pyport_tasks", "add", [1, 2]) == ("ok", 3)


def test_call_reply_without_pending_call_is_logged(port):
    port.send((Atom("call_reply"), 5, (Atom("ok"), 1)))
    tag, level, logger, message = port.recv()
    assert (tag, level, logger) == ("log", "warning", "erlang")
    assert "call_reply" in message


def test_spawn_task_from_a_sync_task(port):
    assert port.call("pyport_tasks", "spawn_from_sync", ["spawned"]) == ("ok", "Task")
    wait_for_record("spawned")


def test_spawn_task_from_a_thread_goes_to_the_port_loop(port):
    assert port.call("pyport_tasks", "spawn_from_thread", ["threaded"]) == ("ok", "started")
    assert pyport_tasks.EVENTS["threaded"].wait(10)
    assert "threaded" in pyport_tasks.RECORD


def test_large_reply_drains_while_the_loop_is_idle(port):
    # 4 MiB: far more than a pipe holds, so it needs many writable events
    # while the loop has nothing else to do.
    assert port.call("pyport_tasks", "big", [4 << 20]) == ("ok", "x" * (4 << 20))


def test_stop_cancels_tasks_and_ends_the_server(port):
    id = make_ref(40)
    port.send(task(id, "pyport_tasks", "forever", ["stop"]))
    wait_for_record(("started", "stop"))
    port.send((Atom("stop"),))
    assert port.recv() == ("result", id, ("error", "cancelled"))
    port.join()
    assert port.rc == 0
    assert port.loop.is_closed()
    assert ("finally", "stop") in pyport_tasks.RECORD
    from erlang import _context
    assert _context.current() is None


def test_messages_after_stop_are_ignored(port):
    port.send((Atom("stop"),), task(1, "pyport_tasks", "record", ["after stop"]))
    port.join()
    assert "after stop" not in pyport_tasks.RECORD
    assert port.reader.nothing_within(0.05)


def test_eof_on_input_ends_the_server(port):
    id = make_ref(41)
    port.send(task(id, "pyport_tasks", "forever", ["eof"]))
    port.eof()
    assert port.recv() == ("result", id, ("error", "cancelled"))
    port.join()
    assert port.rc == 0
    assert port.loop.is_closed()


def test_pending_messages_before_eof_are_served():
    harness = PortHarness().start()
    try:
        harness.send(task(1, "pyport_tasks", "add", [1, 2]))
        harness.eof()
        assert harness.recv() == ("result", 1, ("ok", 3))
        harness.join()
    finally:
        harness.close()


def test_backpressure_stops_reading_and_resumes():
    harness = PortHarness(high_water=256 << 10, low_water=64 << 10).start()
    try:
        n, size = 64, 64 << 10  # 4 MiB of replies, nobody reading them yet
        harness.send(*(task(i, "pyport_tasks", "big", [size]) for i in range(n)))
        deadline = time.monotonic() + 10
        while harness.server._reading and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not harness.server._reading, "the server never stopped reading"
        # paused means more than low_water queued (else it would read again)
        assert harness.server.channel.pending() > harness.server.low_water
        replies = [harness.recv() for _ in range(n)]
        assert replies == [("result", i, ("ok", "x" * size)) for i in range(n)]
        assert harness.call("pyport_tasks", "add", [1, 2]) == ("ok", 3)
        assert harness.server._reading
    finally:
        harness.close()


def test_python_logging_reaches_erlang():
    harness = PortHarness().start()
    handler = ChannelLogHandler(harness.server)
    import logging

    logger = logging.getLogger("pyport.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        id = make_ref(50)
        harness.send(task(id, "pyport_tasks", "log", ["pyport.test", "info", "hello log"]))
        first, second = harness.recv(), harness.recv()
        assert first == ("log", "info", "pyport.test", "hello log")
        assert second == ("result", id, ("ok", "logged"))
        harness.send(task(id, "pyport_tasks", "log_from_thread", ["pyport.test", "from thread"]))
        got = {harness.recv(), harness.recv()}
        assert ("log", "error", "pyport.test", "from thread") in got
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        harness.close()


def test_port_server_rejects_bad_water_marks():
    loop = erlang.new_event_loop()
    try:
        class FakeChannel:
            fd_in, fd_out = 0, 1

        with pytest.raises(ValueError):
            PortServer(loop, FakeChannel(), high_water=1, low_water=2)
    finally:
        loop.close()


def test_frames_are_what_erlang_sends():
    # term_to_binary({task, ...}) starts with the version byte 131.
    data = frame(task(1, "m", "f"))
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    assert data[4] == 131
    assert _pyport.decode(data[4:])[0] == "task"
