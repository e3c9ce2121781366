"""PollerSelector keeps selectors.EpollSelector's semantics and errors.

Every test runs against both selectors, so a difference is a failure.
"""

from __future__ import annotations

import os
import selectors
import socket
import tempfile
from collections.abc import Callable, Iterator
from selectors import EVENT_READ, EVENT_WRITE

import pytest

from erlang import PollerSelector

SELECTORS: dict[str, Callable[[], selectors.BaseSelector]] = {
    "epoll": selectors.EpollSelector,
    "poller": PollerSelector,
}


@pytest.fixture(params=sorted(SELECTORS))
def sel(request: pytest.FixtureRequest) -> Iterator[selectors.BaseSelector]:
    s = SELECTORS[request.param]()
    yield s
    s.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_register_returns_key_and_get_key(sel, pair):
    a, _ = pair
    key = sel.register(a, EVENT_READ, "data")
    assert key.fileobj is a
    assert key.fd == a.fileno()
    assert key.events == EVENT_READ
    assert key.data == "data"
    assert sel.get_key(a) == key
    assert sel.get_key(a.fileno()) == key
    assert len(sel.get_map()) == 1
    assert a.fileno() in sel.get_map()


@pytest.mark.parametrize("events", [0, 4, EVENT_READ | 8])
def test_register_bad_events_is_value_error(sel, pair, events):
    with pytest.raises(ValueError):
        sel.register(pair[0], events)
    assert len(sel.get_map()) == 0


@pytest.mark.parametrize("fileobj", [-1, "x", object(), 1.5])
def test_register_bad_fileobj_is_value_error(sel, fileobj):
    with pytest.raises(ValueError):
        sel.register(fileobj, EVENT_READ)


def test_register_twice_is_key_error(sel, pair):
    a, _ = pair
    sel.register(a, EVENT_READ)
    with pytest.raises(KeyError):
        sel.register(a, EVENT_WRITE)
    with pytest.raises(KeyError):
        sel.register(a.fileno(), EVENT_READ)


def test_unregister_unknown_is_key_error(sel, pair):
    with pytest.raises(KeyError):
        sel.unregister(pair[0])
    with pytest.raises(KeyError):
        sel.get_key(pair[0])


def test_modify_unknown_is_key_error(sel, pair):
    with pytest.raises(KeyError):
        sel.modify(pair[0], EVENT_READ)


def test_register_regular_file_is_os_error(sel):
    with tempfile.TemporaryFile() as f:
        with pytest.raises(OSError):
            sel.register(f, EVENT_READ)
        assert len(sel.get_map()) == 0  # nothing left behind


def test_select_reports_readiness(sel, pair):
    a, b = pair
    sel.register(a, EVENT_READ | EVENT_WRITE, "a")
    ready = dict((key.fd, ev) for key, ev in sel.select(0))
    assert ready == {a.fileno(): EVENT_WRITE}
    b.send(b"x")
    ready = dict((key.fd, ev) for key, ev in sel.select(1.0))
    assert ready == {a.fileno(): EVENT_READ | EVENT_WRITE}


def test_select_is_level_triggered(sel, pair):
    a, b = pair
    sel.register(a, EVENT_READ)
    b.send(b"xy")
    for _ in range(3):  # unread data keeps being reported
        assert [(k.fileobj, ev) for k, ev in sel.select(1.0)] == [(a, EVENT_READ)]
    a.recv(10)
    assert sel.select(0) == []


def test_select_timeout_with_nothing_ready(sel, pair):
    sel.register(pair[0], EVENT_READ)
    assert sel.select(0.01) == []
    assert sel.select(0) == []
    assert sel.select(-1) == []


def test_select_with_no_registration(sel):
    assert sel.select(0) == []


def test_modify_events_and_data(sel, pair):
    a, b = pair
    key = sel.register(a, EVENT_READ, "one")
    same = sel.modify(a, EVENT_READ, "one")
    assert same == key
    key2 = sel.modify(a, EVENT_WRITE, "two")
    assert (key2.events, key2.data) == (EVENT_WRITE, "two")
    assert sel.get_key(a) == key2
    b.send(b"x")
    assert [(k.fd, ev) for k, ev in sel.select(1.0)] == [(a.fileno(), EVENT_WRITE)]
    key3 = sel.modify(a, EVENT_WRITE, "three")
    assert key3.data == "three" and sel.get_key(a).data == "three"


def test_unregister_then_register_again(sel, pair):
    a, b = pair
    sel.register(a, EVENT_READ)
    key = sel.unregister(a)
    assert key.fileobj is a
    assert len(sel.get_map()) == 0
    b.send(b"x")
    assert sel.select(0) == []
    sel.register(a, EVENT_READ)
    assert len(sel.select(1.0)) == 1


def test_unregister_closed_socket_by_object(sel):
    a, b = socket.socketpair()
    sel.register(a, EVENT_READ)
    a.close()  # fileno() is now -1: found by identity
    key = sel.unregister(a)
    assert key.fileobj is a
    b.close()


def test_hangup_is_reported_as_readable(sel, pair):
    a, b = pair
    sel.register(a, EVENT_READ)
    b.close()
    assert [(k.fileobj, ev) for k, ev in sel.select(1.0)] == [(a, EVENT_READ)]


def test_pipe_write_end(sel):
    r, w = os.pipe()
    try:
        sel.register(w, EVENT_WRITE)
        assert [(k.fd, ev) for k, ev in sel.select(0)] == [(w, EVENT_WRITE)]
    finally:
        os.close(r)
        os.close(w)


def test_close_makes_get_map_none_and_get_key_fail(pair):
    for factory in SELECTORS.values():
        s = factory()
        s.register(pair[0], EVENT_READ)
        s.close()
        assert s.get_map() is None
        with pytest.raises(RuntimeError):
            s.get_key(pair[0])


def test_context_manager_closes():
    with PollerSelector() as s:
        assert s.get_map() is not None
    assert s.get_map() is None


def test_wakeup_interrupts_select_from_another_thread():
    import threading

    with PollerSelector() as s:
        a, b = socket.socketpair()
        try:
            s.register(a, EVENT_READ)
            timer = threading.Timer(0.05, s.wakeup)
            timer.start()
            # Nothing becomes ready: only the wake-up can end this wait
            # before its 10 s timeout (so a broken wake-up fails, not hangs).
            import time

            t0 = time.monotonic()
            assert s.select(10.0) == []
            assert time.monotonic() - t0 < 9.0
            timer.join()
        finally:
            a.close()
            b.close()
