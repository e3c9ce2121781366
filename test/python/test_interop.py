"""Python -> Erlang interop through a PortServer fed by pipes: this test
plays the Erlang side (it answers ``call``/``send``/``whereis`` packets)."""

from __future__ import annotations

import struct
import sys
import time

import pytest

import _pyport
import erlang
import pyport_interop_helpers
from erlang import _context, _interop, _schedule
from porthelp import Atom, Contains, PortHarness, make_ref, task

CALL_REPLY = Atom("call_reply")
OK = Atom("ok")
ERROR = Atom("error")


def make_pid(n: int, node: bytes = b"nonode@nohost") -> erlang.Pid:
    """An Erlang pid (NEW_PID_EXT), as Erlang would send it."""
    data = (b"\x83X" + b"w" + bytes([len(node)]) + node
            + struct.pack(">III", n, 0, 0))
    return _pyport.decode(data)


@pytest.fixture
def port():
    pyport_interop_helpers.RECORD.clear()
    harness = PortHarness().start()
    try:
        yield harness
    finally:
        harness.close()


def expect(port, tag: str):
    """The next packet, which must be tagged ``tag``."""
    packet = port.recv()
    assert packet[0] == tag, packet
    return packet


def reply(port, call_id, value) -> None:
    port.send((CALL_REPLY, call_id, value))


def call_cancelled(port, call_id) -> None:
    """The next packet is ``{call_cancel, CallId}``: Python gave up on the
    call, and Erlang ends the callback."""
    assert expect(port, "call_cancel")[1] == call_id


def result_of(port, id):
    packet = expect(port, "result")
    assert packet[1] == id, packet
    return packet[2]


# -- erlang.call ---------------------------------------------------------------


def test_call_sends_name_and_args_and_returns_the_reply(port):
    id = make_ref(1)
    port.send(task(id, "pyport_interop_helpers", "call", ["double", 21]))
    _, call_id, name, args = expect(port, "call")
    assert (name, args) == ("double", [21])
    reply(port, call_id, (OK, 42))
    assert result_of(port, id) == ("ok", 42)


def test_call_accepts_an_atom_name_and_many_args(port):
    id = make_ref(2)
    port.send(task(id, "pyport_interop_helpers", "call", [Atom("cb"), 1, "two", [3.0], {"k": None}]))
    _, call_id, name, args = expect(port, "call")
    assert (name, args) == ("cb", [1, "two", [3.0], {"k": None}])
    reply(port, call_id, (OK, (1, "x")))
    assert result_of(port, id) == ("ok", (1, "x"))


def test_call_from_a_coroutine_blocks_only_that_task(port):
    id = make_ref(3)
    port.send(task(id, "pyport_interop_helpers", "call_in_coroutine", ["cb", 1]))
    _, call_id, _, _ = expect(port, "call")
    other = make_ref(4)
    port.send(task(other, "pyport_interop_helpers", "sleep_record", ["other", 0.01]))
    assert result_of(port, other) == ("ok", "other")
    reply(port, call_id, (OK, "late"))
    assert result_of(port, id) == ("ok", "late")


def test_erlang_exception_raises_call_error_with_class_and_reason(port):
    id = make_ref(5)
    port.send(task(id, "pyport_interop_helpers", "call_error", ["boom"], {Atom("stack"): True}))
    _, call_id, _, _ = expect(port, "call")
    reply(port, call_id, (ERROR, (Atom("erlang"), Atom("throw"), (Atom("bad"), 1), "stack")))
    assert result_of(port, id) == ("ok", ["CallError", "throw", ("bad", 1), "stack"])


def test_unknown_callback_raises_unknown_callback_error(port):
    id = make_ref(6)
    port.send(task(id, "pyport_interop_helpers", "call_error", ["nope"]))
    _, call_id, _, _ = expect(port, "call")
    reply(port, call_id, (ERROR, (Atom("unknown_callback"), "nope")))
    status, (cls, erlang_class, reason, _) = result_of(port, id)
    assert (status, cls, erlang_class, reason) == ("ok", "UnknownCallbackError", "error",
                                                    ("unknown_callback", "nope"))


def test_callback_limit_raises_callback_limit_error(port):
    id = make_ref(7)
    port.send(task(id, "pyport_interop_helpers", "call_error", ["busy"]))
    _, call_id, _, _ = expect(port, "call")
    reply(port, call_id, (ERROR, (Atom("callback_limit"), 1000)))
    status, (cls, erlang_class, reason, _) = result_of(port, id)
    assert (status, cls, erlang_class, reason) == ("ok", "CallbackLimitError", "error",
                                                    ("callback_limit", 1000))
    id = make_ref(8)
    port.send(task(id, "pyport_interop_helpers", "call", ["busy"]))
    _, call_id, _, _ = expect(port, "call")
    reply(port, call_id, (ERROR, (Atom("callback_limit"), 1000)))
    status, (kind, cls, message, _) = result_of(port, id)
    assert (status, kind, cls) == ("error", "python", "CallbackLimitError")
    assert "1000" in message and "max_callbacks" in message


def test_abandoned_whereis_sends_no_call_cancel(port):
    """Only a call has an Erlang side to end: a whereis given up on is
    forgotten quietly."""
    id = make_ref(9)
    port.send(task(id, "pyport_interop_helpers", "whereis", ["x"], deadline_ms=30))
    expect(port, "whereis")
    assert result_of(port, id) == ("error", "timeout")


def test_unconverted_call_error_propagates_as_a_task_error(port):
    id = make_ref(7)
    port.send(task(id, "pyport_interop_helpers", "call", ["boom"]))
    _, call_id, _, _ = expect(port, "call")
    reply(port, call_id, (ERROR, (Atom("erlang"), Atom("error"), Atom("badarith"), "")))
    status, (kind, type_name, message, _) = result_of(port, id)
    assert (status, kind, type_name) == ("error", "python", "CallError")
    assert "error:'badarith'" in message


def test_unconvertible_argument_is_a_type_error_and_nothing_is_sent(port):
    id = make_ref(8)
    port.send(task(id, "pyport_interop_helpers", "call_unconvertible", ["cb"]))
    status, (cls, message) = result_of(port, id)
    assert (status, cls) == ("ok", "TypeError")
    assert "set" in message


def test_async_call_lets_other_tasks_finish_first(port):
    id = make_ref(10)
    port.send(task(id, "pyport_interop_helpers", "async_call", ["slow", 5]))
    _, call_id, name, args = expect(port, "call")
    assert (name, args) == ("slow", [5])
    others = [make_ref(11 + i) for i in range(3)]
    port.send(*(task(o, "pyport_interop_helpers", "sleep_record", [i, 0]) for i, o in enumerate(others)))
    assert [result_of(port, o) for o in others] == [("ok", 0), ("ok", 1), ("ok", 2)]
    reply(port, call_id, (OK, 25))
    assert result_of(port, id) == ("ok", 25)


def test_cancelled_async_call_drops_the_late_reply_quietly(port):
    id = make_ref(20)
    port.send(task(id, "pyport_interop_helpers", "async_call", ["slow"]))
    _, call_id, _, _ = expect(port, "call")
    port.send((Atom("cancel"), id))
    call_cancelled(port, call_id)
    assert result_of(port, id) == ("error", "cancelled")
    reply(port, call_id, (OK, 1))
    assert port.call("pyport_tasks", "add", [1, 1]) == ("ok", 2)
    assert port.reader.nothing_within(0.05)  # no "unknown call" warning


def test_reply_for_an_unknown_call_is_logged(port):
    reply(port, 987654, (OK, 1))
    tag, level, logger, message = port.recv()
    assert (tag, level, logger) == ("log", "warning", "erlang")
    assert "987654" in message


# -- re-entrancy -----------------------------------------------------------------


def test_tasks_arriving_while_a_call_waits_run_sync_and_async(port):
    """Erlang's callback runs Python on the same loop before it answers."""
    id = make_ref(30)
    port.send(task(id, "pyport_interop_helpers", "call_then_record", ["cb", "outer"]))
    _, outer_call, _, _ = expect(port, "call")
    sync_id, async_id = make_ref(31), make_ref(32)
    port.send(task(sync_id, "pyport_tasks", "add", [2, 3]),
              task(async_id, "pyport_tasks", "async_add", [4, 5], {Atom("delay"): 0.01}))
    assert result_of(port, sync_id) == ("ok", 5)
    assert result_of(port, async_id) == ("ok", 9)
    reply(port, outer_call, (OK, "outer done"))
    assert result_of(port, id) == ("ok", "outer done")


def test_python_erlang_python_chain_five_levels_deep(port):
    ids = [make_ref(40 + i) for i in range(5)]
    calls = []
    for level, id in enumerate(ids):
        port.send(task(id, "pyport_interop_helpers", "call_then_record", ["cb", level]))
        _, call_id, _, args = expect(port, "call")
        assert args == [level]
        calls.append(call_id)
    # Answer innermost first, as nested Erlang callbacks would.
    for level in reversed(range(5)):
        reply(port, calls[level], (OK, level * 10))
        assert result_of(port, ids[level]) == ("ok", level * 10)
    assert [r for r in pyport_interop_helpers.RECORD] == [("returned", lv, lv * 10)
                                                 for lv in reversed(range(5))]


def test_an_outer_reply_that_comes_first_waits_for_the_inner_call(port):
    outer, inner = make_ref(50), make_ref(51)
    port.send(task(outer, "pyport_interop_helpers", "call", ["cb", "outer"]))
    _, outer_call, _, _ = expect(port, "call")
    port.send(task(inner, "pyport_interop_helpers", "call", ["cb", "inner"]))
    _, inner_call, _, _ = expect(port, "call")
    reply(port, outer_call, (OK, "o"))
    assert port.reader.nothing_within(0.05)  # the outer frame is below the inner one
    reply(port, inner_call, (OK, "i"))
    assert result_of(port, inner) == ("ok", "i")
    assert result_of(port, outer) == ("ok", "o")


def test_timers_and_other_tasks_run_while_a_call_waits(port):
    sleeper = make_ref(60)
    port.send(task(sleeper, "pyport_interop_helpers", "sleep_record", ["timer", 0.02]))
    id = make_ref(61)
    port.send(task(id, "pyport_interop_helpers", "call", ["slow"]))
    _, call_id, _, _ = expect(port, "call")
    assert result_of(port, sleeper) == ("ok", "timer")
    reply(port, call_id, (OK, None))
    assert result_of(port, id) == ("ok", None)


def test_cancel_of_a_plain_task_waiting_in_call(port):
    id = make_ref(70)
    port.send(task(id, "pyport_interop_helpers", "call", ["never"]))
    _, call_id, _, _ = expect(port, "call")
    port.send((Atom("cancel"), id))
    call_cancelled(port, call_id)
    assert result_of(port, id) == ("error", "cancelled")
    reply(port, call_id, (OK, 1))  # too late: dropped quietly
    assert port.call("pyport_tasks", "add", [1, 2]) == ("ok", 3)
    assert port.reader.nothing_within(0.05)


def test_deadline_of_a_plain_task_waiting_in_call(port):
    id = make_ref(71)
    port.send(task(id, "pyport_interop_helpers", "call", ["never"], deadline_ms=30))
    _, call_id, _, _ = expect(port, "call")
    call_cancelled(port, call_id)
    assert result_of(port, id) == ("error", "timeout")


def test_deadline_of_a_coroutine_waiting_in_a_sync_call(port):
    id = make_ref(72)
    port.send(task(id, "pyport_interop_helpers", "call_in_coroutine", ["never"], deadline_ms=30))
    _, call_id, _, _ = expect(port, "call")
    call_cancelled(port, call_id)
    assert result_of(port, id) == ("error", "timeout")
    assert port.server.tasks.jobs == {}


def test_nesting_is_bounded(port):
    ids = []
    for level in range(_interop.MAX_NESTING):
        id = make_ref(100 + level)
        port.send(task(id, "pyport_interop_helpers", "call", ["cb", level]))
        ids.append((id, expect(port, "call")[1]))
    last = make_ref(99)
    port.send(task(last, "pyport_interop_helpers", "nested_depth_error", ["cb"]))
    status, (name, message) = result_of(port, last)
    assert (status, name) == ("ok", "RecursionError")
    assert "async_call" in message
    for id, call_id in reversed(ids):
        port.send((Atom("cancel"), id))
        call_cancelled(port, call_id)
        assert result_of(port, id) == ("error", "cancelled")


def test_call_from_another_thread_goes_through_the_loop(port):
    id = make_ref(80)
    port.send(task(id, "pyport_interop_helpers", "call_from_thread", ["cb", 1]))
    _, call_id, name, args = expect(port, "call")
    assert (name, args) == ("cb", [1])
    reply(port, call_id, (OK, "from thread"))
    assert result_of(port, id) == ("ok", "from thread")


def test_call_from_run_in_executor(port):
    id = make_ref(81)
    port.send(task(id, "pyport_interop_helpers", "call_from_executor", ["cb"]))
    _, call_id, _, _ = expect(port, "call")
    reply(port, call_id, (OK, 7))
    assert result_of(port, id) == ("ok", 7)


def test_eof_while_a_call_waits_stops_the_port(port):
    id = make_ref(82)
    port.send(task(id, "pyport_interop_helpers", "call", ["never"]))
    _, call_id, _, _ = expect(port, "call")
    port.eof()
    call_cancelled(port, call_id)
    assert result_of(port, id) == ("error", "cancelled")
    port.join()


# -- erlang.send / whereis / self ------------------------------------------------


def test_send_to_a_pid_waits_for_the_acknowledgement(port):
    pid = make_pid(77)
    id = make_ref(90)
    port.send(task(id, "pyport_interop_helpers", "send", [pid, ("hello", [1, 2])]))
    _, call_id, dest, term = expect(port, "send")
    assert (dest, term) == (pid, ("hello", [1, 2]))
    assert port.reader.nothing_within(0.05)
    reply(port, call_id, (OK, True))
    assert result_of(port, id) == ("ok", "sent")


def test_send_from_async_code_and_to_a_registered_name(port):
    id = make_ref(91)
    port.send(task(id, "pyport_interop_helpers", "send_async", ["logger_proxy", 1],
                   {Atom("as_atom"): True}))
    _, call_id, dest, _ = expect(port, "send")
    assert dest == "logger_proxy"  # an atom on the wire
    reply(port, call_id, (OK, True))
    assert result_of(port, id) == ("ok", "sent")


def test_send_to_a_dead_process_raises_process_error(port):
    pid = make_pid(78)
    id = make_ref(92)
    port.send(task(id, "pyport_interop_helpers", "send_error", [pid, "x"]))
    _, call_id, _, _ = expect(port, "send")
    reply(port, call_id, (ERROR, Atom("noproc")))
    assert result_of(port, id) == ("ok", ["ProcessError", Contains("no process")])


def test_send_to_a_bad_destination_is_a_type_error_before_anything_is_sent(port):
    for dest in ["a_name", 42, None, (Atom("a"), "b")]:
        id = make_ref(93)
        port.send(task(id, "pyport_interop_helpers", "send_error", [dest, "x"]))
        status, (name, message) = result_of(port, id)
        assert (status, name) == ("ok", "TypeError")
        assert "destination" in message


def test_whereis(port):
    pid = make_pid(79)
    id = make_ref(94)
    port.send(task(id, "pyport_interop_helpers", "whereis", ["some_server"]))
    _, call_id, name = expect(port, "whereis")
    assert name == "some_server"
    reply(port, call_id, (OK, pid))
    assert result_of(port, id) == ("ok", pid)
    port.send(task(id, "pyport_interop_helpers", "whereis", [Atom("nobody")]))
    _, call_id, _ = expect(port, "whereis")
    reply(port, call_id, (OK, Atom("undefined")))
    assert result_of(port, id) == ("ok", None)


def test_self_is_the_caller_from_task_options(port):
    caller = make_pid(5)
    for func in ["self_pid", "self_pid_later"]:
        id = make_ref(95)
        port.send(task(id, "pyport_interop_helpers", func, caller=caller))
        assert result_of(port, id) == ("ok", caller)


def test_self_without_a_caller_is_the_worker_from_setup(port):
    worker = make_pid(6)
    port.send((Atom("setup"), {Atom("worker"): worker, Atom("loop"): 3}))
    id = make_ref(96)
    port.send(task(id, "pyport_interop_helpers", "self_pid"))
    assert result_of(port, id) == ("ok", worker)
    port.send(task(id, "pyport_interop_helpers", "self_pid_in_thread", caller=make_pid(7)))
    assert result_of(port, id) == ("ok", worker)
    assert port.server.bridge.loop_index == 3


def test_self_before_setup_and_outside_a_task_is_not_connected(port):
    id = make_ref(97)
    port.send(task(id, "pyport_interop_helpers", "self_pid"))
    status, (_, type_name, message, _) = result_of(port, id)
    assert (status, type_name) == ("error", "NotConnectedError")


# -- schedule, schedule_py, consume_time_slice ---------------------------------


def test_schedule_continues_as_the_erlang_callback(port):
    id = make_ref(110)
    port.send(task(id, "pyport_interop_helpers", "schedule", ["compute", 5]))
    _, call_id, name, args = expect(port, "call")
    assert (name, args) == ("compute", [5])
    reply(port, call_id, (OK, 10))
    assert result_of(port, id) == ("ok", 10)


def test_schedule_py_chains_and_yields_between_steps(port):
    id = make_ref(111)
    port.send(task(id, "pyport_interop_helpers", "schedule_py_chain", [10]))
    assert result_of(port, id) == ("ok", 55)
    port.send(task(id, "pyport_interop_helpers", "schedule_py_async", ["async step"]))
    assert result_of(port, id) == ("ok", "async step")


def test_schedule_markers_outside_a_task_are_plain_objects():
    marker = erlang.schedule("cb", 1)
    assert isinstance(marker, erlang.ScheduleMarker)
    assert "cb" in repr(marker)
    with pytest.raises(TypeError):
        erlang.schedule_py(1, "f")  # type: ignore[arg-type]


def test_consume_time_slice_counts_percentages():
    _schedule.reset_time_slice()
    assert [erlang.consume_time_slice(30) for _ in range(4)] == [False, False, False, True]
    assert erlang.consume_time_slice(100) is True
    assert pyport_interop_helpers.time_slices(1, 250) == 2
    for bad in [0, 101, 1.5, True, "5"]:
        with pytest.raises(ValueError):
            erlang.consume_time_slice(bad)  # type: ignore[arg-type]


def test_each_task_starts_a_new_time_slice(port):
    for _ in range(3):
        assert port.call("pyport_interop_helpers", "time_slices", [50, 3]) == ("ok", 1)


# -- atoms, standalone mode ------------------------------------------------------


def test_atom_is_bounded():
    used, limit = _pyport.atom_usage()
    try:
        _pyport.set_max_atoms(used + 1)
        erlang.atom("pyport_test_atom_within_the_bound")
        with pytest.raises(erlang.AtomLimitError, match="max_atoms"):
            erlang.atom("pyport_test_atom_beyond_the_bound")
        with pytest.raises(erlang.AtomLimitError):
            erlang.Atom("pyport_test_atom_beyond_the_bound_too")
        assert erlang.atom("pyport_test_atom_within_the_bound").name == \
            "pyport_test_atom_within_the_bound"
    finally:
        _pyport.set_max_atoms(limit)
    with pytest.raises(TypeError):
        erlang.atom(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        erlang.atom("x" * 256)


def test_without_a_port_the_erlang_side_functions_say_so():
    assert _context.current() is None
    for fn, args in [(erlang.call, ("cb",)), (erlang.send, (erlang.Atom("x"), 1)),
                     (erlang.whereis, ("x",)), (erlang.self, ())]:
        with pytest.raises(erlang.NotConnectedError, match="port mode"):
            fn(*args)

    async def main():
        return await erlang.async_call("cb")

    with pytest.raises(erlang.NotConnectedError):
        erlang.run(main())


def test_error_classes():
    assert issubclass(erlang.ProcessError, Exception)
    assert issubclass(erlang.UnknownCallbackError, erlang.CallError)
    assert issubclass(erlang.UnknownCallbackError, LookupError)
    assert issubclass(erlang.NotConnectedError, RuntimeError)
    assert issubclass(erlang.AtomLimitError, RuntimeError)
    exc = erlang.CallError("cb", "exit", "normal")
    assert (exc.name, exc.erlang_class, exc.reason) == ("cb", "exit", "normal")
    assert "exit" in str(exc)


def test_nothing_is_left_waiting(port):
    id = make_ref(120)
    port.send(task(id, "pyport_interop_helpers", "call", ["cb"]))
    _, call_id, _, _ = expect(port, "call")
    reply(port, call_id, (OK, 0))
    assert result_of(port, id) == ("ok", 0)
    bridge = port.server.bridge
    assert (bridge.depth, bridge._sync, bridge._async, bridge.frame, bridge._frames) == \
        (0, {}, {}, None, {})
    assert port.server._waiting == 0



