"""Large payloads over the channel (docs/performance.md): the pipes keep
their default size for small traffic and are raised once a message over
64 KiB crosses; large messages cross whole either way."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator

import pytest

from porthelp import PortHarness

DEFAULT_PIPE = 64 * 1024
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def pipe_size(fd: int) -> int:
    return fcntl.fcntl(fd, F_GETPIPE_SZ)


def max_pipe() -> int:
    with open("/proc/sys/fs/pipe-max-size") as f:
        return int(f.read())


@pytest.fixture
def port() -> Iterator[PortHarness]:
    harness = PortHarness().start()
    try:
        yield harness
    finally:
        harness.close()


def test_small_traffic_keeps_the_default_pipes(port: PortHarness) -> None:
    assert port.call("builtins", "len", [b"x" * 1000]) == ("ok", 1000)
    assert pipe_size(port.in_w) == DEFAULT_PIPE
    assert pipe_size(port.out_r) == DEFAULT_PIPE


def test_a_large_input_raises_both_pipes(port: PortHarness) -> None:
    n = 3 << 20
    assert port.call("builtins", "len", [b"\xff" * n]) == ("ok", n)
    want = min(1 << 20, max_pipe())
    assert pipe_size(port.in_w) >= want
    assert pipe_size(port.out_r) >= want


def test_a_large_result_crosses_whole_and_raises_the_pipes(port: PortHarness) -> None:
    n = 5 << 20  # above the 4 MiB the buffers are kept at
    status, value = port.call("builtins", "bytes", [n])
    # (The harness reads an Erlang binary back as str when it is UTF-8.)
    assert (status, value) == ("ok", "\0" * n)
    assert pipe_size(port.out_r) >= min(1 << 20, max_pipe())
    # And the port goes on with small tasks afterwards.
    assert port.call("builtins", "len", [[1, 2, 3]]) == ("ok", 3)
