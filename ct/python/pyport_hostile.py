"""Hostile Python for ct/py_hostile_SUITE.erl (muontrap style).

Each function does one thing that careless or hostile task code can do to
the port and the node behind it: forge packets, flood the node with atoms,
raise what is not an ``Exception``, exit, stop or close the loop, fork,
spin, hand back integers the BEAM cannot hold. The suite checks that the
node stays up, every caller gets an answer in time, and only the
misbehaving task pays.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import struct
import sys
import time
import zlib
from typing import Any

import erlang
from erlang import _native

_pyport: Any = _native._pyport


# -- the raw output channel -----------------------------------------------------


def _channel_fd() -> int:
    """The descriptor the port writes packets to, found as hostile code
    would: by looking for the live channel object."""
    for obj in gc.get_objects():
        if type(obj).__name__ == "Channel" and hasattr(obj, "fd_out"):
            return int(obj.fd_out)
    raise RuntimeError("no channel object found")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        view = view[n:]


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def _atom_ext(name: str) -> bytes:
    data = name.encode()
    return b"w" + bytes([len(data)]) + data


def forge_atom_frames(count: int, per_frame: int) -> int:
    """Write ``count`` well-framed packets of ``per_frame`` new atoms each
    straight to the output channel, as ``{log, ...}``-shaped tuples."""
    fd = _channel_fd()
    stamp = f"{os.getpid()}_{time.monotonic_ns()}"
    for i in range(count):
        atoms = b"".join(_atom_ext(f"forged_{stamp}_{i}_{j}") for j in range(per_frame))
        body = b"\x83h" + bytes([per_frame]) + atoms if per_frame < 256 else \
            b"\x83i" + struct.pack(">I", per_frame) + atoms
        _write_all(fd, _frame(body))
    return count


def many_atoms(n: int) -> list[Any]:
    """Raise the port's own atom bound and return ``n`` new atoms."""
    _pyport.set_max_atoms(10**9)
    stamp = f"{os.getpid()}_{time.monotonic_ns()}"
    return [erlang.Atom(f"many_{stamp}_{i}") for i in range(n)]


def forge_compressed(claimed_mb: int) -> int:
    """A compressed term (tag 80) that inflates to ``claimed_mb`` MiB of
    zeros: a binary of that size, deflated to about a thousandth of it."""
    size = claimed_mb << 20
    body = b"m" + struct.pack(">I", size)
    z = zlib.compressobj(9)
    parts = [z.compress(body)]
    chunk = bytes(1 << 20)
    for _ in range(claimed_mb):
        parts.append(z.compress(chunk))
    parts.append(z.flush())
    packed = b"".join(parts)
    payload = b"\x83P" + struct.pack(">I", len(body) + size) + packed
    _write_all(_channel_fd(), _frame(payload))
    return len(payload)


def forge_garbage(text: str) -> int:
    """Unframed bytes on the output channel: the stream is desynchronised."""
    data = text.encode()
    _write_all(_channel_fd(), data)
    return len(data)


def huge_int(bits: int) -> int:
    return 1 << bits


# -- exceptions that are not Exception --------------------------------------------


class Custom(BaseException):
    pass


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


def raise_base() -> None:
    raise Custom("a BaseException subclass")


def raise_generator_exit() -> None:
    raise GeneratorExit("generator exit from a plain function")


async def raise_base_async() -> None:
    await asyncio.sleep(0)
    raise Custom("a BaseException subclass from a coroutine")


def raise_bad_str() -> None:
    raise BadStr()


def call_sys_exit(code: Any = 0) -> None:
    sys.exit(code)


async def call_sys_exit_async(code: Any = 0) -> None:
    await asyncio.sleep(0)
    sys.exit(code)


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def send_sigint() -> str:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.1)  # the handler runs at the next bytecode boundary
    return "survived"


def stop_loop() -> None:
    asyncio.get_event_loop().stop()


async def stop_loop_async() -> None:
    asyncio.get_running_loop().stop()


def close_loop() -> None:
    asyncio.get_event_loop().close()


async def close_loop_async() -> None:
    asyncio.get_running_loop().close()


# -- fork -------------------------------------------------------------------------------


def fork_and_return() -> str:
    """The child returns from the task too, into the port's loop."""
    pid = os.fork()
    return "parent" if pid else "child"


def fork_and_exit() -> int:
    """The child ends with sys.exit(0), running the interpreter's exit
    path (atexit, finalizers) on state shared with the parent."""
    pid = os.fork()
    if pid == 0:
        sys.exit(0)
    os.waitpid(pid, 0)
    return pid


# -- runaway code ---------------------------------------------------------------------


def spin() -> None:
    while True:
        pass


def spin_for(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


# -- memory -------------------------------------------------------------------------------


def big_bytes(mb: int) -> bytes:
    return bytes(mb << 20)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


# -- environment --------------------------------------------------------------------------


def getenv(name: str) -> Any:
    return os.environ.get(name)


def erlang_package_file() -> str:
    return str(erlang.__file__)


# -- bystanders ---------------------------------------------------------------------------


async def nap(seconds: float, value: Any) -> Any:
    await asyncio.sleep(seconds)
    return value


# -- Rust side: runaway code, memory (i10-rs) -----------------------------------------


def spin_catching() -> None:
    """Spin, and swallow the watchdog's TaskDeadline to spin on: only
    Erlang's cancel_grace_ms kill stops this one."""
    while True:
        try:
            spin()
        except BaseException:
            pass


def big_bytes_len(mb: int) -> int:
    """Make an object of ``mb`` MiB and answer only its length."""
    return len(big_bytes(mb))


# -- port side: exceptions, exits, fork, channel fds, environment ---------------------------


def fork_and_report() -> list[Any]:
    """As :func:`fork_and_return`, telling the parent's caller the child's
    pid (so the suite can check that the child is gone)."""
    pid = os.fork()
    return ["parent", pid] if pid else ["child", os.getpid()]


def byte_size(data: str | bytes) -> int:
    return len(data)


def write_fd(fd: int, data: str) -> int:
    """A raw write to a descriptor number guessed by the task (Erlang
    binaries arrive as ``str``)."""
    return os.write(fd, data.encode())


async def sigint_handled_by_task() -> str:
    """A task may still take SIGINT for itself with add_signal_handler."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[str] = loop.create_future()
    loop.add_signal_handler(signal.SIGINT, got.set_result, "handled")
    try:
        os.kill(os.getpid(), signal.SIGINT)
        return await asyncio.wait_for(got, 5.0)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


# -- load and lifetimes (issue 10, items 9-12) ----------------------------------------


async def nap_sized(seconds: float, payload: bytes) -> int:
    """Naps, then answers how big its argument was (a large argument
    without an equally large answer)."""
    await asyncio.sleep(seconds)
    return len(payload)


async def ignore_cancel_for(seconds: float) -> str:
    """Swallows every cancellation until ``seconds`` have passed, while the
    loop itself keeps running."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            await asyncio.sleep(end - time.monotonic())
        except asyncio.CancelledError:
            pass
    return "done"

# -- BEAM decode boundary (py_hostile_SUITE, section "BEAM decode boundary") ----------


def forge_raw(data: bytes | str) -> int:
    """Write ``data`` as it is (frames built by the suite) to the output
    channel. (An Erlang binary that happens to be UTF-8 arrives as str.)"""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    _write_all(_channel_fd(), raw)
    return len(raw)


def send_to(dest: Any, term: Any) -> str:
    """``erlang.send`` to ``dest`` (a pid, or a name given as str); the
    exception's class name when it is refused."""
    target = erlang.Atom(dest) if isinstance(dest, str) else dest
    try:
        erlang.send(target, term)
    except erlang.ProcessError as e:
        return f"ProcessError: {e}"
    except OverflowError:
        return "OverflowError"
    return "sent"


def whereis(name: str) -> Any:
    return erlang.whereis(name)


# -- a port that keeps talking ----------------------------------------------------------


async def chatter(seconds: float, every: float) -> int:
    """Write a line to stdout every ``every`` seconds for ``seconds``: the
    port keeps sending output packets meanwhile."""
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        os.write(1, b"pyport-ct chatter %d\n" % n)
        n += 1
        await asyncio.sleep(every)
    return n
