"""Actors without Erlang (erlang._actor): a PortServer fed actor packets
through pipes (docs/actors.md, docs/protocol.md)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

import erlang
import pyport_actor
from porthelp import Atom, Contains, PortHarness, make_ref

_ids = itertools.count(1)


@pytest.fixture
def port():
    pyport_actor.finished.clear()
    pyport_actor.waiting.clear()
    harness = PortHarness().start()
    try:
        yield harness
    finally:
        harness.close()


def start(port: PortHarness, func: str, args: list[Any] | None = None,
          window: int = 4) -> erlang.Ref:
    """``{actor_start, ...}``; returns the id once ``actor_started`` came."""
    id = make_ref(next(_ids))
    port.send((Atom("actor_start"), id, Atom("pyport_actor"), func, args or [], {},
               {Atom("window"): window}))
    assert port.recv() == ("actor_started", id)
    return id


def msg(id: erlang.Ref, message: Any) -> tuple[Any, ...]:
    return (Atom("actor_msg"), id, message)


def test_a_gen_server_answers_calls_with_the_token(port):
    id = start(port, "Counter", [10], window=64)
    port.send(msg(id, (Atom("$gen_call"), 7, Atom("bump"))))
    assert port.recv() == ("actor_reply", id, 7, 11)
    port.send(msg(id, (Atom("$gen_cast"), ("set", 3))),
              msg(id, (Atom("$gen_call"), 8, Atom("get"))))
    assert port.recv() == ("actor_reply", id, 8, 3)


def test_consumption_is_acknowledged_in_half_windows(port):
    # window 4: an ack of 2 after every second message taken.
    id = start(port, "Counter", [0], window=4)
    port.send(*[msg(id, (Atom("$gen_cast"), ("set", n))) for n in range(4)])
    assert port.recv() == ("actor_ack", id, 2)
    assert port.recv() == ("actor_ack", id, 2)
    assert port.reader.nothing_within(0.2)


def test_a_waiting_actor_with_few_unacknowledged_sends_no_ack(port):
    id = start(port, "Counter", [0], window=8)
    port.send(msg(id, (Atom("$gen_call"), 1, Atom("get"))))
    assert port.recv() == ("actor_reply", id, 1, 0)
    # One message taken of a window of 8: Erlang still has credit.
    assert port.reader.nothing_within(0.2)


def test_the_end_is_the_result_and_a_raise_is_the_error(port):
    id = start(port, "Counter", [0])
    port.send(msg(id, (Atom("$gen_call"), 1, Atom("stop"))))
    assert port.recv() == ("actor_reply", id, 1, "stopping")
    assert port.recv() == ("result", id, ("ok", None))
    bad = start(port, "raises", ["boom"])
    port.send(msg(bad, "go"))
    assert port.recv() == ("result", bad, ("error", ("python", "ValueError", "boom",
                                                     Contains("raises"))))


def test_a_cancel_runs_the_finally_and_answers_cancelled(port):
    id = start(port, "guarded", ["g"])
    port.send((Atom("cancel"), id))
    assert port.recv() == ("result", id, ("error", "cancelled"))
    assert pyport_actor.finished == ["g"]


def test_a_start_that_fails_is_its_result_error(port):
    id = make_ref(next(_ids))
    port.send((Atom("actor_start"), id, Atom("pyport_actor"), "not_a_coroutine", [], {}, {}))
    assert port.recv() == ("result", id, ("error", ("python", "TypeError",
                                                    Contains("coroutine function"),
                                                    Contains("Traceback"))))
    init = make_ref(next(_ids))
    port.send((Atom("actor_start"), init, Atom("pyport_actor"), "FailingInit", [], {}, {}))
    assert port.recv() == ("result", init, ("error", ("python", "KeyError", "'no config'",
                                                      Contains("init"))))


def test_a_message_to_an_ended_actor_is_dropped(port):
    id = start(port, "idle")
    port.send(msg(id, "done"))
    assert port.recv() == ("result", id, ("ok", None))
    port.send(msg(id, "late"))
    assert port.call("pyport_actor", "actor_count", []) == ("ok", 0)


def test_selective_receive_keeps_the_skipped_in_order(port):
    id = make_ref(next(_ids))
    port.send((Atom("actor_start"), id, Atom("pyport_actor"), "selective",
               [make_pid()], {}, {Atom("window"): 8}))
    assert port.recv() == ("actor_started", id)
    port.send(*[msg(id, m) for m in (Atom("a"), Atom("b"), Atom("c"), (Atom("urgent"), 1))])
    # erlang.send of the result: a {send, CallId, Dest, Term} request.
    request = port.recv()
    while request[0] == "actor_ack":
        request = port.recv()
    assert request[0] == "send" and request[3] == [("urgent", 1), "b", "a", "c"]


def make_pid() -> erlang.Pid:
    import _pyport
    import struct
    node = b"nonode@nohost"
    return _pyport.decode(b"\x83X" + b"w" + bytes([len(node)]) + node
                          + struct.pack(">III", 5, 0, 0))


def test_receive_outside_an_actor_is_an_error():
    async def main() -> None:
        await erlang.receive()

    with pytest.raises(RuntimeError, match="only inside an actor"):
        asyncio.run(main())


def test_receive_takes_match_or_tags_not_both():
    async def main() -> None:
        await erlang.receive(match=bool, tags=["x"])

    with pytest.raises((TypeError, RuntimeError)):
        asyncio.run(main())


def test_a_message_without_python_form_is_dropped_and_counted(port):
    import struct

    import _pyport
    id = start(port, "idle", window=2)
    node = b"n@h"
    term = (b"\x83h\x03" + _pyport.encode(Atom("actor_msg"))[1:] + _pyport.encode(id)[1:]
            + b"Y" + b"w" + bytes([len(node)]) + node + struct.pack(">II", 1, 0))
    port.write(struct.pack(">I", len(term)) + term)
    # Counted as consumed (window 2: acked at once), and logged.
    packets = [port.recv(), port.recv()]
    assert ("actor_ack", id, 1) in packets
    assert any(p[0] == "log" and "no Python form" in p[3] for p in packets)
    port.send(msg(id, "done"))
    assert port.recv() == ("actor_ack", id, 1)
    assert port.recv() == ("result", id, ("ok", None))


@pytest.mark.parametrize("how, reason", [("stop", "normal"), ("crash", "LookupError"),
                                         ("cancel", "cancelled")])
def test_terminate_runs_however_a_gen_server_ends(port, how, reason):
    pyport_actor.terminated.clear()
    id = start(port, "Recorder", window=64)
    if how == "cancel":
        port.send((Atom("cancel"), id))
    else:
        port.send(msg(id, Atom(how)))
    assert port.recv()[:2] == ("result", id)
    assert pyport_actor.terminated == [reason]
