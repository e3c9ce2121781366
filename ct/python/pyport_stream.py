"""Generators for ct/py_stream_SUITE.erl: well-behaved, slow, endless,
failing and misbehaving streams."""

from __future__ import annotations

import asyncio
import time

import erlang

# How far each endless generator got, by name: shows that a slow consumer
# stalls the producer.
produced: dict[str, int] = {}


def count(n):
    """0 .. n-1, a plain sync generator."""
    yield from range(n)


async def acount(n):
    """0 .. n-1, an async generator that never suspends."""
    for i in range(n):
        yield i


async def tokens(words, delay):
    """An LLM-like token stream: one word every ``delay`` seconds."""
    for word in words:
        await asyncio.sleep(delay)
        yield word


def blocking(n, delay):
    """A sync generator that blocks the loop ``delay`` seconds per item."""
    for i in range(n):
        time.sleep(delay)
        yield i


def chunks(n, size):
    """``n`` binaries of ``size`` bytes."""
    for i in range(n):
        yield bytes([i % 256]) * size


def endless(name):
    """Counts forever, recording how far it got."""
    i = 0
    while True:
        produced[name] = i + 1
        yield i
        i += 1


async def aendless(name):
    i = 0
    while True:
        produced[name] = i + 1
        yield i
        i += 1


def how_far(name):
    return produced.get(name, 0)


def tell_on_close(pid, tag, n=None):
    """Counts (forever when ``n`` is None); its ``finally`` tells ``pid``."""
    try:
        i = 0
        while n is None or i < n:
            yield i
            i += 1
    finally:
        erlang.send(pid, (erlang.atom("closed"), tag))


class _Resource:
    def __init__(self, pid, tag):
        self.pid = pid
        self.tag = tag

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        erlang.send(self.pid, (erlang.atom("exited"), self.tag))
        return False


async def atell_on_close(pid, tag, delay=0.0):
    """An async generator inside ``async with``; the exit tells ``pid``."""
    async with _Resource(pid, tag):
        i = 0
        while True:
            if delay:
                await asyncio.sleep(delay)
            yield i
            i += 1


def fail_after(n):
    """``n`` items, then ValueError."""
    yield from range(n)
    raise ValueError(f"failed after {n}")


async def afail_after(n):
    for i in range(n):
        yield i
    raise KeyError("gone")


def unconvertible_at(n):
    """``n`` good items, then one with no Erlang form."""
    yield from range(n)
    yield object()
    yield n + 1


def not_a_stream():
    return [1, 2, 3]


def raises_at_call():
    raise RuntimeError("no stream today")


async def coroutine_returning_stream(n):
    """An awaitable whose result is the stream."""
    await asyncio.sleep(0)
    return count(n)


class Countdown:
    """A lazy iterable that is no generator (no ``close``)."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n, 0, -1))


def countdown(n):
    return Countdown(n)


def stalls_after(n, seconds):
    """``n`` items, then a silent wait of ``seconds`` (async)."""
    async def gen():
        for i in range(n):
            yield i
        await asyncio.sleep(seconds)
        yield n
    return gen()


def blocks_after(n, seconds):
    """``n`` items, then blocks the loop for ``seconds`` (sync)."""
    yield from range(n)
    time.sleep(seconds)
    yield n


def sleep_then(seconds, value):
    """An ordinary task, for the streams-with-other-callers case."""
    time.sleep(seconds)
    return value


async def asleep_then(seconds, value):
    await asyncio.sleep(seconds)
    return value


def with_atom(name):
    yield erlang.atom(name)


def rss_kb():
    """The port's resident set, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def spins_after(n, seconds):
    """``n`` items, then spins on the loop thread for ``seconds`` (a busy
    sync generator: the watchdog can interrupt it)."""
    yield from range(n)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    yield n


class _BadHook:
    """An item whose conversion hook raises (task code chooses its hooks)."""

    def __erlang__(self):
        raise RuntimeError("no term for me")


async def abad_item_at(n, kind):
    """``n`` good items, then one that cannot be sent (``kind``: ``hook``, an
    ``__erlang__`` that raises; ``handle``, an ``erlang.handle(...)``), then
    one more; each item in its own loop iteration, so that each is sent by
    the pump's deferred flush."""
    for i in range(n):
        yield i
        await asyncio.sleep(0)
    yield _BadHook() if kind == "hook" else erlang.handle(object())
    await asyncio.sleep(0)
    yield n + 1


def handle_item_at(n):
    """``n`` good items, then an ``erlang.handle(...)`` (a sync generator)."""
    yield from range(n)
    yield erlang.handle(object())
    yield n + 1


async def aspins_after(n, seconds):
    """``n`` items, then spins on the loop thread for ``seconds`` without
    awaiting (a busy async generator)."""
    for i in range(n):
        yield i
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    yield n
