"""Test helpers: drive a PortServer (or the executable) through real pipes."""

from __future__ import annotations

import asyncio
import itertools
import os
import select
import struct
import threading
import time
from typing import Any

import _pyport
import erlang
from erlang._server import PortServer

Atom = erlang.Atom
RECV_TIMEOUT = 10.0
_ids = itertools.count(1 << 20)


def frame(term: Any) -> bytes:
    data = _pyport.encode(term)
    return struct.pack(">I", len(data)) + data


def make_ref(n: int, node: bytes = b"nonode@nohost") -> erlang.Ref:
    """An Erlang reference (NEWER_REFERENCE_EXT), as Erlang would send it."""
    data = (b"\x83Z" + struct.pack(">H", 3) + b"w" + bytes([len(node)]) + node
            + struct.pack(">I", 1) + struct.pack(">III", n, 0, 0))
    return _pyport.decode(data)


def task(id: Any, module: str, func: str, args: list | None = None,
         kwargs: dict | None = None, **opts: Any) -> tuple:
    """``{task, Id, Module, Func, Args, Kwargs, Opts}`` with atom module/option keys."""
    return (Atom("task"), id, Atom(module), func, args or [], kwargs or {},
            {Atom(k): v for k, v in opts.items()})


class Contains(str):
    """Equal to any string that contains it (for error messages)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and str.__contains__(other, str(self))

    __hash__ = str.__hash__

    def __repr__(self) -> str:
        return f"Contains({str(self)!r})"


class FrameReader:
    """Reads ``{packet, 4}`` frames from a blocking fd, with a timeout."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def recv(self, timeout: float = RECV_TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                (size,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + size:
                    data, self.buf = self.buf[4:4 + size], self.buf[4 + size:]
                    return _pyport.decode(data)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete packet from the port")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                chunk = os.read(self.fd, 1 << 20)
                if not chunk:
                    raise EOFError("the port closed its output")
                self.buf += chunk

    def nothing_within(self, seconds: float) -> bool:
        """True when no complete packet arrives within ``seconds``."""
        try:
            got = self.recv(seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected packet {got!r}")


class PortHarness:
    """A PortServer on an ErlangEventLoop in a thread, fed through pipes."""

    def __init__(self, **server_options: Any) -> None:
        in_r, self.in_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.channel = _pyport.Channel(in_r, out_w)
        os.close(in_r)  # the channel owns duplicates
        os.close(out_w)
        self.loop = erlang.new_event_loop()
        self.server = PortServer(self.loop, self.channel, **server_options)
        self.reader = FrameReader(self.out_r)
        self.rc: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="port-server")
        self.ready: Any = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.rc = self.server.serve_forever()
        except BaseException as exc:  # pragma: no cover - reported by close()
            self.error = exc

    def start(self) -> PortHarness:
        self.thread.start()
        self.ready = self.recv()
        return self

    def write(self, data: bytes) -> None:
        os.write(self.in_w, data)

    def send(self, *terms: Any) -> None:
        self.write(b"".join(frame(t) for t in terms))

    def recv(self, timeout: float = RECV_TIMEOUT) -> Any:
        return self.reader.recv(timeout)

    def call(self, *task_args: Any, **opts: Any) -> Any:
        """Send one task and return the reply's payload."""
        id = make_ref(next(_ids))
        self.send(task(id, *task_args, **opts))
        reply = self.recv()
        assert reply[0] == "result" and reply[1] == id, reply
        return reply[2]

    def eof(self) -> None:
        if self.in_w >= 0:
            os.close(self.in_w)
            self.in_w = -1

    def join(self, timeout: float = RECV_TIMEOUT) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the server did not stop"

    def close(self) -> None:
        if self.thread.is_alive():
            self.eof()
            self.join()
        self.eof()
        if self.out_r >= 0:
            os.close(self.out_r)
            self.out_r = -1
        if not self.loop.is_closed():
            self.loop.close()
        if self.error is not None:
            raise self.error
