"""Python that attacks the Python -> Erlang request path, for the ``attack``
group of ct/py_callback_SUITE.erl (issue 23): requests whose answers it does
not read, callbacks without bound, callbacks it gives up on, sends to a
node that does not read.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import erlang
from erlang import _context, _wire


def _bridge() -> Any:
    context = _context.current()
    assert context is not None
    return context.bridge


def flood_whereis_then_block(count: int, seconds: float) -> None:
    """Queue ``count`` ``whereis`` requests without waiting for one, write
    them all, then block the loop in C (``time.sleep``) without reading
    the answers: Erlang's answers fill the port."""
    bridge = _bridge()
    for _ in range(count):
        bridge._queue(_wire.WHEREIS, next(bridge._ids), ("init",))
    channel = bridge.link.channel
    deadline = time.monotonic() + 60
    while channel.flush() > 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(seconds)


async def gather_calls(name: str, count: int) -> list[Any]:
    """``count`` ``erlang.async_call(name)`` at once: how many succeeded,
    how many raised, and the first exception's type and message."""
    results = await asyncio.gather(*(erlang.async_call(name) for _ in range(count)),
                                   return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    first = errors[0] if errors else None
    return [len(results) - len(errors), len(errors),
            type(first).__name__ if first else None, str(first) if first else None]


def call(name: str) -> Any:
    """A blocking ``erlang.call`` from a plain function."""
    return erlang.call(name)


async def async_call(name: str) -> Any:
    return await erlang.async_call(name)


async def async_call_wait_for(name: str, seconds: float) -> str:
    """Gives up on the call after ``seconds`` (``asyncio.wait_for``), and
    returns normally."""
    try:
        await asyncio.wait_for(erlang.async_call(name), seconds)
    except asyncio.TimeoutError:
        return "gave_up"
    return "answered"


def send_flood(node: str, name: str, size: int, count: int) -> list[Any]:
    """``count`` ``erlang.send`` of ``size`` bytes each to ``name`` on
    ``node``: how many went, how many were refused, the first refusal."""
    dest = (erlang.Atom(name), erlang.Atom(node))
    payload = b"x" * size
    sent = refused = 0
    first = None
    for _ in range(count):
        try:
            erlang.send(dest, payload)
            sent += 1
        except erlang.ProcessError as exc:
            refused += 1
            if first is None:
                first = str(exc)
    return [sent, refused, first]


def send_unanswered(node: str, name: str, count: int) -> int:
    """``count`` fire-and-forget ``{send, Dest, Msg}`` packets (protocol v1,
    no answer) to ``name`` on ``node``, written as raw packets."""
    bridge = _bridge()
    dest = (erlang.Atom(name), erlang.Atom(node))
    for i in range(count):
        bridge.link.queue((_wire.SEND, dest, i))
    return count
