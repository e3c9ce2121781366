"""Python side of `make bench`: trivial work, so the figures measure pyport."""

import asyncio
from typing import Any, AsyncIterator, Iterator


def echo(x: Any) -> Any:
    """A trivial sync function: no Task is created for it."""
    return x


async def aecho(x: Any) -> Any:
    """A trivial coroutine: runs as an asyncio Task."""
    return x


def spin(n: int) -> int:
    """CPU-bound pure-Python loop."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def call_loop(n: int) -> int:
    """`n` sequential erlang.call round trips to the `bench_noop` callback."""
    import erlang

    call = getattr(erlang, "call", None)
    if call is None:
        return -1
    for i in range(n):
        call("bench_noop", i)
    return n


async def sleep_ms(ms: int) -> int:
    await asyncio.sleep(ms / 1000)
    return ms


def count(n: int) -> Iterator[int]:
    """A stream of ``n`` small integers from a sync generator."""
    yield from range(n)


async def acount(n: int) -> AsyncIterator[int]:
    """The same from an async generator."""
    for i in range(n):
        yield i


def chunks(n: int, size: int) -> Iterator[bytes]:
    """A stream of ``n`` binaries of ``size`` bytes."""
    chunk = b"x" * size
    for _ in range(n):
        yield chunk
