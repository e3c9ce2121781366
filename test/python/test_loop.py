"""The same asyncio behaviour on stdlib's SelectorEventLoop and ErlangEventLoop.

Every test takes the parametrised ``loop`` fixture (conftest.py), so each
runs three times: ``[stdlib]``, ``[erlang]`` (the native scheduling core) and
``[erlang-selector]`` (the Python-only fallback).
"""

from __future__ import annotations

import asyncio
import errno
import os
import selectors
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time

import pytest

import erlang
from conftest import LOOP_FACTORIES, TEST_TIMEOUT, close_loop, pyport_executable, run

# -- callbacks and timers ----------------------------------------------------------


def test_call_soon_runs_in_fifo_order(loop):
    seen: list[int] = []
    for i in range(10):
        loop.call_soon(seen.append, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == list(range(10))


def test_callbacks_scheduled_by_callbacks_run_next_iteration(loop):
    seen: list[str] = []

    def first() -> None:
        seen.append("first")
        loop.call_soon(seen.append, "nested")

    loop.call_soon(first)
    loop.call_soon(seen.append, "second")
    loop.call_soon(loop.call_soon, loop.stop)
    loop.run_forever()
    assert seen == ["first", "second", "nested"]


def test_call_later_runs_in_deadline_order(loop):
    seen: list[float] = []
    for delay in (0.05, 0.01, 0.03, 0.0, 0.02):
        loop.call_later(delay, seen.append, delay)
    loop.call_later(0.06, loop.stop)
    loop.run_forever()
    assert seen == [0.0, 0.01, 0.02, 0.03, 0.05]


def test_call_soon_before_call_later_zero(loop):
    seen: list[str] = []
    loop.call_later(0, seen.append, "later")
    loop.call_soon(seen.append, "soon")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == ["soon", "later"]


def test_call_at_and_loop_time(loop):
    fired: list[float] = []
    when = loop.time() + 0.02
    handle = loop.call_at(when, lambda: fired.append(loop.time()))
    assert handle.when() == when
    loop.call_at(when + 0.01, loop.stop)
    loop.run_forever()
    assert len(fired) == 1
    assert fired[0] >= when - loop._clock_resolution


def test_cancelled_timer_does_not_run(loop):
    seen: list[str] = []
    h = loop.call_later(0.01, seen.append, "cancelled")
    loop.call_later(0.02, seen.append, "kept")
    h.cancel()
    assert h.cancelled()
    loop.call_later(0.03, loop.stop)
    loop.run_forever()
    assert seen == ["kept"]


def test_sleep_and_gather(loop):
    async def job(n: int) -> int:
        await asyncio.sleep(0.01 * (3 - n))
        return n * 2

    async def main() -> list[int]:
        return await asyncio.gather(job(0), job(1), job(2))

    assert run(loop, main()) == [0, 2, 4]


def test_timeouts_and_wait_for(loop):
    async def main() -> str:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.01)
        return await asyncio.wait_for(asyncio.sleep(0, "done"), 1.0)

    assert run(loop, main()) == "done"


def test_call_soon_threadsafe_wakes_a_waiting_loop(loop):
    # The loop waits with no timer at all; only the other thread's
    # call_soon_threadsafe can complete the future.
    fut = loop.create_future()

    def other_thread() -> None:
        time.sleep(0.05)
        loop.call_soon_threadsafe(fut.set_result, threading.get_ident())

    t = threading.Thread(target=other_thread)
    t.start()
    done = []
    fut.add_done_callback(lambda f: (done.append(f.result()), loop.stop()))
    guard = threading.Timer(TEST_TIMEOUT, loop.call_soon_threadsafe, [loop.stop])
    guard.start()
    try:
        loop.run_forever()
    finally:
        guard.cancel()
        t.join()
    assert done == [t.ident]


def test_run_in_executor(loop):
    async def main() -> tuple[int, int]:
        tid = await loop.run_in_executor(None, threading.get_ident)
        total = await loop.run_in_executor(None, sum, range(100))
        return tid, total

    tid, total = run(loop, main())
    assert tid != threading.get_ident()
    assert total == 4950


def test_getaddrinfo_and_getnameinfo(loop):
    async def main():
        infos = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        name = await loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST
                                      | socket.NI_NUMERICSERV)
        return infos, name

    infos, name = run(loop, main())
    assert infos[0][0] == socket.AF_INET
    assert infos[0][4] == ("127.0.0.1", 80)
    assert name == ("127.0.0.1", "80")


def test_exception_handler_gets_callback_errors(loop):
    contexts: list[dict] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def boom() -> None:
        raise ZeroDivisionError("boom")

    loop.call_soon(boom)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)


# -- readers and writers -------------------------------------------------------------


def test_add_reader_and_remove_reader(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    got: list[bytes] = []

    def on_read() -> None:
        got.append(a.recv(100))
        if b"".join(got) == b"hello world":
            loop.stop()

    try:
        loop.add_reader(a, on_read)
        loop.call_soon(b.send, b"hello ")
        loop.call_later(0.01, b.send, b"world")
        guard = loop.call_later(TEST_TIMEOUT, loop.stop)
        loop.run_forever()
        guard.cancel()
        assert b"".join(got) == b"hello world"
        assert loop.remove_reader(a) is True
        assert loop.remove_reader(a) is False
    finally:
        a.close()
        b.close()


def test_add_writer_and_remove_writer(loop):
    a, b = socket.socketpair()
    calls: list[int] = []

    def on_write() -> None:
        calls.append(1)
        loop.remove_writer(a)
        loop.stop()

    try:
        loop.add_writer(a.fileno(), on_write)
        loop.run_forever()
        assert calls == [1]
        assert loop.remove_writer(a.fileno()) is False
    finally:
        a.close()
        b.close()


def test_reader_on_a_pipe_sees_eof(loop):
    r, w = os.pipe()
    os.set_blocking(r, False)
    chunks: list[bytes] = []

    def on_read() -> None:
        data = os.read(r, 100)
        chunks.append(data)
        if not data:
            loop.remove_reader(r)
            loop.stop()

    try:
        loop.add_reader(r, on_read)
        loop.call_soon(os.write, w, b"abc")
        loop.call_later(0.01, os.close, w)
        loop.run_forever()
        assert chunks == [b"abc", b""]
    finally:
        os.close(r)


def test_reader_and_writer_on_the_same_fd(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    events: list[str] = []

    def on_write() -> None:
        events.append("w")
        loop.remove_writer(a)
        b.send(b"x")

    def on_read() -> None:
        events.append("r:" + a.recv(10).decode())
        loop.remove_reader(a)
        loop.stop()

    try:
        loop.add_reader(a, on_read)
        loop.add_writer(a, on_write)
        loop.run_forever()
        assert events == ["w", "r:x"]
    finally:
        a.close()
        b.close()


# -- TCP, Unix sockets, sock_* ---------------------------------------------------------------


class EchoServerProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def eof_received(self) -> None:
        self.transport.close()


async def _echo_roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          payload: bytes) -> bytes:
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


def test_tcp_echo_protocol_server_and_stream_client(loop):
    payload = os.urandom(256 * 1024)  # several socket buffers: exercises writers

    async def main() -> bytes:
        server = await loop.create_server(EchoServerProtocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert writer.get_extra_info("peername") == ("127.0.0.1", port)
            return await _echo_roundtrip(reader, writer, payload)

    assert run(loop, main()) == payload


def test_tcp_protocol_client_as_in_the_guide(loop):
    class EchoClientProtocol(asyncio.Protocol):
        def __init__(self, message: str, on_con_lost: asyncio.Future) -> None:
            self.message = message
            self.on_con_lost = on_con_lost
            self.received = b""

        def connection_made(self, transport):
            transport.write(self.message.encode())
            self.transport = transport

        def data_received(self, data):
            self.received += data
            if self.received == self.message.encode():
                self.transport.close()

        def connection_lost(self, exc):
            self.on_con_lost.set_result(True)

    async def main() -> bytes:
        server = await loop.create_server(EchoServerProtocol, "127.0.0.1", 0,
                                          reuse_address=True)
        port = server.sockets[0].getsockname()[1]
        async with server:
            on_con_lost = loop.create_future()
            transport, protocol = await loop.create_connection(
                lambda: EchoClientProtocol("Hello, World!", on_con_lost),
                host="127.0.0.1", port=port)
            await on_con_lost
            return protocol.received

    assert run(loop, main()) == b"Hello, World!"


def test_tcp_streams_server_many_clients(loop):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()

    async def client(port: int, n: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return await _echo_roundtrip(reader, writer, f"client {n}\n".encode())

    async def main() -> list[bytes]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await asyncio.gather(*(client(port, n) for n in range(20)))

    assert run(loop, main()) == [f"CLIENT {n}\n".encode() for n in range(20)]


@pytest.fixture
def unix_path():
    # Short directory: AF_UNIX paths are limited to ~108 bytes.
    d = tempfile.mkdtemp(prefix="pyport-", dir="/tmp")
    yield os.path.join(d, "echo.sock")
    shutil.rmtree(d, ignore_errors=True)


def test_unix_socket_echo(loop, unix_path):
    payload = b"over a unix socket " * 1000

    async def main() -> bytes:
        server = await loop.create_unix_server(EchoServerProtocol, unix_path)
        async with server:
            reader, writer = await asyncio.open_unix_connection(unix_path)
            return await _echo_roundtrip(reader, writer, payload)

    assert run(loop, main()) == payload


def test_sock_methods(loop):
    async def main() -> bytes:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        try:
            accept = asyncio.ensure_future(loop.sock_accept(listener))
            await loop.sock_connect(client, listener.getsockname())
            conn, _ = await accept
            with conn:
                conn.setblocking(False)
                await loop.sock_sendall(client, b"ping" * 10000)
                client.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := await loop.sock_recv(conn, 65536):
                    data += chunk
                await loop.sock_sendall(conn, b"pong")
                buf = bytearray(4)
                n = await loop.sock_recv_into(client, buf)
                assert bytes(buf[:n]) == b"pong"[:n]
                return data
        finally:
            client.close()
            listener.close()

    assert run(loop, main()) == b"ping" * 10000


def test_sendfile_over_tcp(loop, tmp_path):
    content = os.urandom(300 * 1024)
    path = tmp_path / "blob"
    path.write_bytes(content)

    async def main() -> bytes:
        received = bytearray()
        done = loop.create_future()

        class Sink(asyncio.Protocol):
            def data_received(self, data):
                received.extend(data)

            def eof_received(self):
                done.set_result(None)

        server = await loop.create_server(Sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            with open(path, "rb") as f:
                sent = await loop.sendfile(transport, f)
            assert sent == len(content)
            transport.write_eof()
            await done
            transport.close()
        return bytes(received)

    assert run(loop, main()) == content


def _ssl_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    utils = pytest.importorskip("test.test_asyncio.utils")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(utils.ONLYCERT, utils.ONLYKEY)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    return server_ctx, client_ctx


def test_ssl_echo(loop):
    server_ctx, client_ctx = _ssl_contexts()
    payload = b"secret " * 5000

    async def handle(reader, writer):
        data = await reader.readexactly(len(payload))
        writer.write(data)
        await writer.drain()
        writer.close()

    async def main() -> bytes:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
            assert writer.get_extra_info("ssl_object") is not None
            writer.write(payload)
            await writer.drain()
            data = await reader.readexactly(len(payload))
            writer.close()
            try:
                await writer.wait_closed()
            except (ssl.SSLError, ConnectionError):
                pass
            return data

    assert run(loop, main()) == payload


# -- UDP -------------------------------------------------------------------------------------


class UDPEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data.upper(), addr)


class UDPCollector(asyncio.DatagramProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, expect: int = 1) -> None:
        self.got: list[tuple[bytes, tuple]] = []
        self.errors: list[Exception] = []
        self.expect = expect
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.got.append((data, addr))
        if len(self.got) >= self.expect and not self.done.done():
            self.done.set_result(None)

    def error_received(self, exc):
        self.errors.append(exc)


def test_udp_echo_connected_client(loop):
    async def main():
        server, _ = await loop.create_datagram_endpoint(UDPEcho, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, proto = await loop.create_datagram_endpoint(
            lambda: UDPCollector(loop), remote_addr=addr)
        try:
            assert client.get_extra_info("peername") == addr
            client.sendto(b"hello udp")  # connected: no address needed
            await proto.done
            return proto.got
        finally:
            client.close()
            server.close()

    got = run(loop, main())
    assert got[0][0] == b"HELLO UDP"


def test_udp_echo_unconnected_client(loop):
    async def main():
        server, _ = await loop.create_datagram_endpoint(UDPEcho, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, proto = await loop.create_datagram_endpoint(
            lambda: UDPCollector(loop, expect=3), local_addr=("127.0.0.1", 0))
        try:
            for word in (b"one", b"two", b"three"):
                client.sendto(word, addr)
            await proto.done
            return proto.got, addr
        finally:
            client.close()
            server.close()

    got, addr = run(loop, main())
    assert sorted(d for d, _ in got) == [b"ONE", b"THREE", b"TWO"]
    assert all(a == addr for _, a in got)


def test_udp_broadcast_needs_allow_broadcast(loop):
    # 127.255.255.255 is the loopback net's broadcast address: it needs
    # SO_BROADCAST like 255.255.255.255 but works without network routes.
    async def main():
        rx, proto = await loop.create_datagram_endpoint(
            lambda: UDPCollector(loop), local_addr=("0.0.0.0", 0))
        port = rx.get_extra_info("sockname")[1]
        plain, plain_proto = await loop.create_datagram_endpoint(
            lambda: UDPCollector(loop), local_addr=("127.0.0.1", 0))
        tx, _ = await loop.create_datagram_endpoint(
            lambda: UDPCollector(loop), local_addr=("127.0.0.1", 0), allow_broadcast=True)
        try:
            sock = tx.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
            plain.sendto(b"refused", ("127.255.255.255", port))
            tx.sendto(b"broadcast", ("127.255.255.255", port))
            await proto.done
            return proto.got, plain_proto.errors
        finally:
            rx.close()
            plain.close()
            tx.close()

    got, errors = run(loop, main())
    assert [d for d, _ in got] == [b"broadcast"]
    assert len(errors) == 1 and errors[0].errno == errno.EACCES


# -- subprocesses and signals -------------------------------------------------------------------


def test_subprocess_exec(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            pyport_executable(), "-c",
            "import sys; data = sys.stdin.read(); print(data.upper()); sys.exit(7)",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate(b"from parent")
        return out, proc.returncode

    out, code = run(loop, main())
    assert out.strip() == b"FROM PARENT"
    assert code == 7


def test_subprocess_shell(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            "echo out; echo err >&2; exit 3",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert run(loop, main()) == (b"out\n", b"err\n", 3)


def test_subprocess_kill(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        proc.kill()
        return await proc.wait()

    assert run(loop, main()) == -signal.SIGKILL


def test_subprocess_protocol_api(loop):
    class Proto(asyncio.SubprocessProtocol):
        def __init__(self):
            self.out = bytearray()
            self.exited = loop.create_future()

        def pipe_data_received(self, fd, data):
            self.out.extend(data)

        def process_exited(self):
            self.exited.set_result(None)

    async def main():
        transport, proto = await loop.subprocess_exec(Proto, "echo", "via", "protocol",
                                                      stdin=None, stderr=None)
        await proto.exited
        code = transport.get_returncode()
        transport.close()
        return bytes(proto.out), code

    assert run(loop, main()) == (b"via protocol\n", 0)


def test_add_signal_handler(loop):
    got: list[str] = []

    async def main():
        fut = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, lambda tag: (got.append(tag),
                                                              fut.set_result(None)), "usr1")
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            await fut
        finally:
            assert loop.remove_signal_handler(signal.SIGUSR1) is True
        assert loop.remove_signal_handler(signal.SIGUSR1) is False

    run(loop, main())
    assert got == ["usr1"]


def test_add_signal_handler_rejects_bad_input(loop):
    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR2, lambda: None, "x", kw=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        loop.add_signal_handler(1000, lambda: None)
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGKILL, lambda: None)


# -- several loops in several threads ----------------------------------------------------------


def test_several_loops_in_several_threads_stay_isolated(loop_factory):
    # The reference guide's multi-threaded example: each thread drives its
    # own loop with _run_once() and sees only its own callbacks.
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def run_tasks(loop_id: str) -> None:
        try:
            lp = loop_factory()
            seen: list[str] = []
            lp.call_soon(seen.append, loop_id)
            lp.call_later(0.01, seen.append, loop_id)
            deadline = time.monotonic() + TEST_TIMEOUT
            while time.monotonic() < deadline and len(seen) < 2:
                lp._run_once()  # type: ignore[attr-defined]
                time.sleep(0.001)
            lp.close()
            results[loop_id] = seen
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run_tasks, args=(f"loop_{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == {f"loop_{i}": [f"loop_{i}"] * 2 for i in range(4)}


def test_several_running_loops_in_threads_with_io(loop_factory):
    async def work(n: int) -> tuple[int, int]:
        server = await asyncio.start_server(
            lambda r, w: (w.write(str(n).encode()), w.close()), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            data = await reader.read()
            writer.close()
        await asyncio.sleep(0.01)
        return n, int(data)

    results: dict[int, tuple[int, int]] = {}

    def thread_main(n: int) -> None:
        lp = loop_factory()
        try:
            results[n] = lp.run_until_complete(asyncio.wait_for(work(n), TEST_TIMEOUT))
        finally:
            close_loop(lp)

    threads = [threading.Thread(target=thread_main, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: (n, n) for n in range(4)}


# -- ErlangEventLoop specifics -------------------------------------------------------------------


def test_erlang_loop_uses_poller_selector():
    lp = erlang.ErlangEventLoop()
    try:
        assert isinstance(lp._selector, erlang.PollerSelector)  # type: ignore[attr-defined]
        assert isinstance(lp, asyncio.AbstractEventLoop)
    finally:
        lp.close()


def test_erlang_loop_accepts_another_selector():
    lp = erlang.ErlangEventLoop(selectors.SelectSelector())
    try:
        assert lp.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        lp.close()


def test_iteration_hook_runs_after_every_iteration():
    lp = erlang.ErlangEventLoop()
    trace: list[str] = []
    lp._iteration_hook = lambda: trace.append("hook")
    try:
        lp.call_soon(trace.append, "a")
        lp.call_soon(lambda: lp.call_soon(trace.append, "b"))
        lp.call_soon(lambda: lp.call_soon(lambda: lp.call_soon(lp.stop)))
        lp.run_forever()
    finally:
        lp.close()
    # iteration 1 runs 'a' and schedules 'b'; iteration 2 runs 'b'; ...
    assert trace[:4] == ["a", "hook", "b", "hook"]
    assert trace[-1] == "hook"


def test_idle_loop_does_not_spin():
    # One timer 0.3 s away and an fd that never becomes ready: the poller
    # must wait for the timer, not wake up repeatedly. Counted, not timed.
    polls = 0
    sel = erlang.PollerSelector()
    original = sel.select

    def counting_select(timeout=None):
        nonlocal polls
        polls += 1
        return original(timeout)

    sel.select = counting_select  # type: ignore[method-assign]
    lp = erlang.ErlangEventLoop(sel)
    a, b = socket.socketpair()
    try:
        lp.add_reader(a, lambda: None)
        lp.call_later(0.3, lp.stop)
        lp.run_forever()
    finally:
        lp.remove_reader(a)
        a.close()
        b.close()
        lp.close()
    assert polls <= 4, polls


def test_idle_loop_waits_without_timeout():
    timeouts: list[float | None] = []
    sel = erlang.PollerSelector()
    original = sel.select

    def recording_select(timeout=None):
        timeouts.append(timeout)
        return original(timeout)

    sel.select = recording_select  # type: ignore[method-assign]
    lp = erlang.ErlangEventLoop(sel)
    try:
        threading.Timer(0.05, lp.call_soon_threadsafe, [lp.stop]).start()
        lp.run_forever()
    finally:
        lp.close()
    assert None in timeouts  # nothing scheduled: wait forever, zero wake-ups


def test_closed_loop_rejects_work(loop_factory):
    lp = loop_factory()
    lp.close()
    assert lp.is_closed()
    with pytest.raises(RuntimeError):
        lp.call_soon(lambda: None)
    lp.close()  # idempotent


def test_loop_factories_are_what_they_claim():
    assert LOOP_FACTORIES["erlang"] is erlang.ErlangEventLoop
    assert LOOP_FACTORIES["erlang-selector"] is erlang.ErlangSelectorEventLoop
    assert issubclass(erlang.ErlangEventLoop, asyncio.SelectorEventLoop)
    assert issubclass(erlang.ErlangSelectorEventLoop, asyncio.SelectorEventLoop)
    assert sys.platform.startswith("linux")
