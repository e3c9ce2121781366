"""Streams (erlang._stream) against an in-memory channel: credit bounds
what is produced, batches, ends, clean-up, and the errors of a stream."""

from __future__ import annotations

import asyncio
import sys
import types
from typing import Any, AsyncIterator, Callable, Iterator

import pytest

import erlang
from erlang import _wire
from erlang._stream import Streams

DONE = ("stream_end", 1, "done")


class Channel:
    def __init__(self) -> None:
        self.out: list[Any] = []

    def send(self, term: Any) -> None:
        _wire_check(term)
        self.out.append(term)


def _wire_check(term: Any) -> None:
    """What the real channel refuses: objects with no Erlang form."""
    if isinstance(term, (list, tuple)):
        for t in term:
            _wire_check(t)
    elif hasattr(term, "__erlang__"):
        _wire_check(term.__erlang__())  # as the encoder calls the hook
    elif not isinstance(term, (int, float, str, bytes, _wire.Atom, type(None))):
        raise TypeError(f"cannot convert {type(term).__name__}")


class Host:
    def __init__(self, loop: asyncio.AbstractEventLoop, module: types.ModuleType) -> None:
        self.loop = loop
        self.channel = Channel()
        self.module = module
        self.logged: list[str] = []

    def lookup(self, module_name: Any, func_name: Any) -> Callable[..., Any]:
        return getattr(self.module, func_name)  # type: ignore[no-any-return]

    def send(self, term: Any) -> None:
        self.channel.send(term)

    def log(self, level: str, message: str) -> None:
        self.logged.append(message)


def plain(term: Any) -> Any:
    """Atoms as their names, tuples and lists compared alike."""
    if isinstance(term, _wire.Atom):
        return term.name
    if isinstance(term, (tuple, list)):
        return tuple(plain(t) for t in term)
    return term


closed: list[str] = []
produced: list[int] = []


def count(n: int) -> Iterator[int]:
    yield from range(n)


def endless() -> Iterator[int]:
    i = 0
    try:
        while True:
            produced.append(i)
            yield i
            i += 1
    finally:
        closed.append("endless")


async def aendless() -> AsyncIterator[int]:
    i = 0
    try:
        while True:
            produced.append(i)
            yield i
            i += 1
    finally:
        closed.append("aendless")


async def silent() -> AsyncIterator[int]:
    yield 0
    await asyncio.sleep(30)
    yield 1


def failing() -> Iterator[int]:
    yield 1
    raise ValueError("boom")


def bad_item() -> Iterator[Any]:
    yield 1
    yield object()


def listing() -> list[int]:
    return [1]


class BadHook:
    def __erlang__(self) -> Any:
        raise RuntimeError("no term for me")


async def abad_items() -> AsyncIterator[Any]:
    """Good items, a hook that raises, more: one item per loop iteration,
    each sent by the pump's deferred flush."""
    for item in (0, 1, BadHook(), 3):
        yield item
        await asyncio.sleep(0)


async def ahandle_item() -> AsyncIterator[Any]:
    yield 0
    yield erlang.handle(object())  # in the same batch as 0
    yield 2


def handle_item() -> Iterator[Any]:
    yield 0
    yield erlang.handle(object())


fixtures = types.ModuleType("fixtures")
for f in (count, endless, aendless, silent, failing, bad_item, listing, abad_items,
          ahandle_item, handle_item):
    setattr(fixtures, f.__name__, f)


def run(body: Callable[[Streams, Host], Any]) -> Host:
    async def main() -> Host:
        host = Host(asyncio.get_running_loop(), fixtures)
        await body(Streams(host), host)
        return host
    closed.clear()
    produced.clear()
    return asyncio.run(main())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


def test_credit_bounds_what_is_produced() -> None:
    async def body(streams: Streams, host: Host) -> None:
        streams.start(1, "m", "endless", [], {}, {"window": 3})
        await settle()
        assert [plain(t) for t in host.channel.out] == [("stream_data", 1, (0, 1, 2))]
        assert len(produced) == 3
        streams.credit(1, 2)
        await settle()
        assert plain(host.channel.out[-1]) == ("stream_data", 1, (3, 4))
        assert len(produced) == 5
        assert streams.cancel(1)
        await settle()
        assert plain(host.channel.out[-1]) == ("stream_end", 1, ("error", "cancelled"))
        assert closed == ["endless"]
        assert len(streams) == 0
    run(body)


def test_async_generator_is_closed_on_cancel() -> None:
    async def body(streams: Streams, host: Host) -> None:
        streams.start(1, "m", "aendless", [], {}, {"window": 2})
        await settle()
        assert plain(host.channel.out) == (("stream_data", 1, (0, 1)),)
        streams.cancel(1)
        await settle()
        assert closed == ["aendless"]
    run(body)


def test_batch_bounds_a_packet() -> None:
    async def body(streams: Streams, host: Host) -> None:
        streams.start(1, "m", "count", [5], {}, {"window": 10, "batch": 2})
        await settle()
        assert plain(host.channel.out) == (
            ("stream_data", 1, (0, 1)), ("stream_data", 1, (2, 3)),
            ("stream_data", 1, (4,)), plain(DONE))
    run(body)


def test_errors_come_after_the_items() -> None:
    async def body(streams: Streams, host: Host) -> None:
        streams.start(1, "m", "failing", [], {}, {})
        streams.start(2, "m", "bad_item", [], {}, {})
        streams.start(3, "m", "listing", [], {}, {})
        await settle()
        out = [plain(t) for t in host.channel.out]
        assert ("stream_data", 1, (1,)) in out
        assert ("stream_data", 2, (1,)) in out
        ends = {t[1]: t[2] for t in out if t[0] == "stream_end"}
        assert ends[1][1][:3] == ("python", "ValueError", "boom")
        assert ends[2][1][:2] == ("python", "TypeError")
        assert ends[3][1][:2] == ("python", "TypeError")
        assert ends[3][1][3] == ""
    run(body)


def test_idle_timeout_and_deadline() -> None:
    async def body(streams: Streams, host: Host) -> None:
        streams.start(1, "m", "silent", [], {}, {"idle_ms": 50})
        streams.start(2, "m", "endless", [], {}, {"deadline_ms": 50, "window": 1})
        await asyncio.sleep(0.3)
        ends = {t[1]: plain(t[2]) for t in host.channel.out if plain(t[0]) == "stream_end"}
        assert ends == {1: ("error", "idle_timeout"), 2: ("error", "timeout")}
        assert closed == ["endless"]
    run(body)


@pytest.mark.parametrize("opts", [{"window": 0}, {"batch": True}, {"idle_ms": "x"}, "no map"])
def test_bad_options_end_the_stream(opts: Any) -> None:
    async def body(streams: Streams, host: Host) -> None:
        streams.start(1, "m", "count", [1], {}, opts)
        await settle()
        (end,) = host.channel.out
        assert plain(end)[:2] == ("stream_end", 1)
        assert plain(end)[2][1][1] == "TypeError"
    run(body)


def test_credit_and_cancel_for_unknown_streams_are_ignored() -> None:
    async def body(streams: Streams, host: Host) -> None:
        streams.credit(9, 5)
        assert not streams.cancel(9)
        assert host.channel.out == []
    run(body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))


def test_an_item_that_cannot_be_sent_ends_the_stream_naming_it() -> None:
    """No silent loss: the items before it, then an error with the item's
    position and type; nothing after it."""
    async def body(streams: Streams, host: Host) -> None:
        streams.start(1, "m", "abad_items", [], {}, {})
        streams.start(2, "m", "ahandle_item", [], {}, {})
        streams.start(3, "m", "handle_item", [], {}, {})
        streams.start(4, "m", "bad_item", [], {}, {})
        await settle()
        out = [plain(t) for t in host.channel.out]
        items = {i: [x for t in out if t[:2] == ("stream_data", i) for x in t[2]]
                 for i in (1, 2, 3, 4)}
        assert items == {1: [0, 1], 2: [0], 3: [0], 4: [1]}
        ends = {t[1]: t[2] for t in out if t[0] == "stream_end"}
        assert ends[1][1][:2] == ("python", "RuntimeError")
        assert ends[1][1][2] == "stream item 2 (BadHook) cannot be sent to Erlang: no term for me"
        for i in (2, 3):
            assert ends[i][1][:2] == ("python", "TypeError")
            assert ends[i][1][2].startswith("stream item 1 (erlang.handle(object))")
        assert ends[4][1][2].startswith("stream item 1 (object) cannot be sent")
        assert all(end[1][3] == "" for end in ends.values())
        assert host.logged == []
    run(body)
