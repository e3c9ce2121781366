"""erlang._ops: the interpreter info, the log level, ChannelStream."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from erlang import _ops


class FakeServer:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.sent: list[Any] = []
        self.thread = threading.get_ident()

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self.thread

    def send(self, term: Any) -> None:
        self.sent.append(term)


def test_loaded_libpython_reads_the_maps(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/libc.so.6\n"
                    "7f02-7f03 r-xp 0 08:01 2 /opt/py/lib/libpython3.11.so.1.0\n")
    assert _ops.loaded_libpython(str(maps)) == "/opt/py/lib/libpython3.11.so.1.0"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/libc.so.6\n")
    assert _ops.loaded_libpython(str(maps)) is None
    assert _ops.loaded_libpython(str(tmp_path / "absent")) is None


def test_interpreter_info_in_this_executable():
    info = _ops.interpreter_info()
    assert info["python_lib_same"] is True
    assert info["python_lib_built"].endswith(")")


def test_set_log_level():
    root = logging.getLogger()
    before = root.level
    try:
        assert _ops.set_log_level("info") is None
        assert root.level == logging.INFO
        assert _ops.set_log_level("debug") is None
        assert root.level == logging.DEBUG
        assert "unknown OTP logger level" in (_ops.set_log_level("loud") or "")
        assert "not an OTP level" in (_ops.set_log_level(3) or "")
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(before)


def test_channel_stream_sends_whole_lines_in_order():
    server = FakeServer()
    try:
        stream = _ops.ChannelStream(server, 1)  # type: ignore[arg-type]
        print("a", "b", file=stream)
        stream.write("par")
        assert len(server.sent) == 1
        stream.write("tial\nnext")
        stream.flush()
        assert [t[2] for t in server.sent] == [b"a b", b"partial", b"next"]
        assert {str(t[1]) for t in server.sent} == {str(server.sent[0][1])}
        assert "stdout" in repr(server.sent[0][1])
        stream.write("x" * (_ops.MAX_LINE + 5))
        assert server.sent[-1][2] == b"x" * _ops.MAX_LINE
        with pytest.raises(TypeError):
            stream.write(b"bytes")  # type: ignore[arg-type]
    finally:
        server.loop.close()


def test_channel_stream_other_thread_goes_through_the_loop():
    server = FakeServer()
    try:
        stream = _ops.ChannelStream(server, 2)  # type: ignore[arg-type]
        t = threading.Thread(target=lambda: stream.write("from thread\n"))
        t.start()
        t.join()
        assert server.sent == []
        server.loop.call_soon(server.loop.stop)
        server.loop.run_forever()
        assert [t[2] for t in server.sent] == [b"from thread"]
    finally:
        server.loop.close()
