"""Fixtures of ct/py_compat_SUITE.erl: code written for erlang_python."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import erlang

#: how many inline steps ran, and in how many loop iterations
STEPS: list[int] = []


def echo(*args: Any, **kwargs: Any) -> Any:
    return [list(args), kwargs]


def nothing() -> None:
    return None


def nones() -> Any:
    return {"a": None, "b": [None, (None,)]}


async def slow_double(x: int, delay: float = 0.05) -> int:
    await asyncio.sleep(delay)
    return 2 * x


def fail() -> None:
    raise ValueError("bad value")


def chunked(total: int, done: int = 0, acc: int = 0, steps: int = 0) -> Any:
    """Sums 0..total-1 in chunks of 10, continuing inline."""
    end = min(done + 10, total)
    acc += sum(range(done, end))
    if end < total:
        return erlang.schedule_inline("pyport_compat", "chunked",
                                      args=[total, end, acc, steps + 1])
    return [acc, steps + 1]


def inline_then_async(x: int) -> Any:
    return erlang.schedule_inline("pyport_compat", "slow_double", [x])


def py_then_inline(x: int) -> Any:
    """schedule_py, whose continuation returns a schedule_inline marker."""
    return erlang.schedule_py("pyport_compat", "inline_then_async", [x])


def inline_same_iteration(n: int) -> Any:
    """Chains n inline steps, recording each step's ready-queue length and
    a counter other tasks bump: unchanged means no loop turn in between."""
    STEPS.clear()
    return erlang.schedule_inline("pyport_compat", "_step", [n])


def py_same_iteration(n: int) -> Any:
    """The same chain with schedule_py: the loop turns between steps."""
    STEPS.clear()
    return erlang.schedule_py("pyport_compat", "_step", [n], {"inline": False})


def _step(n: int, inline: bool = True) -> Any:
    STEPS.append(_TICKS[0])
    if n > 1:
        if inline:
            return erlang.schedule_inline("pyport_compat", "_step", [n - 1])
        return erlang.schedule_py("pyport_compat", "_step", [n - 1], {"inline": False})
    return list(STEPS)


_TICKS = [0]


async def ticker(rounds: int) -> int:
    """Bumps _TICKS once per loop turn, ``rounds`` times."""
    for _ in range(rounds):
        _TICKS[0] += 1
        await asyncio.sleep(0)
    return _TICKS[0]


def call_attribute(name: str, *args: Any) -> Any:
    """``erlang.<name>(*args)``."""
    return getattr(erlang, name)(*args)


def call_imported(a: int, b: int) -> Any:
    from erlang import compat_add  # type: ignore[attr-defined]

    return compat_add(a, b)


def has_attribute(name: str) -> bool:
    return hasattr(erlang, name)


async def _sleepy(x: int) -> int:
    await asyncio.sleep(0.02)
    return x + 1


def run_from_sync(x: int) -> Any:
    """erlang.run and asyncio.run from sync code the port runs."""
    a = erlang.run(_sleepy(x))
    b = asyncio.run(_sleepy(a))
    return [a, b]


async def run_from_sync_in_coroutine(x: int) -> Any:
    """A coroutine that calls sync code that calls asyncio.run."""
    return run_from_sync(x)


def run_forever_coroutine() -> None:
    """erlang.run of a coroutine that never ends (the caller times out)."""
    asyncio.run(asyncio.sleep(3600))


def run_loop_keeps_serving(x: int) -> Any:
    """While asyncio.run waits, other tasks of the loop run: the coroutine
    waits for an Erlang callback that itself runs a task on this loop."""
    async def main() -> Any:
        return await erlang.async_call("compat_roundtrip", x)

    return asyncio.run(main())


def pid_of_interpreter() -> int:
    return os.getpid()


def run_outside_port_loop() -> Any:
    """erlang.run from a thread with no loop: the stdlib's own behaviour
    (a fresh loop in that thread)."""
    import threading

    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(erlang.run(_sleepy(1))))
    t.start()
    t.join()
    return out[0]


def version_of(module: str) -> Any:
    return getattr(sys.modules[module], "VERSION", None)


def notify_self(message: Any) -> None:
    """Sends ``message`` to the task's caller (for casts)."""
    erlang.send(erlang.self(), message)


def count(n: int, step: int = 1) -> Any:
    """A generator, for py:stream."""
    yield from range(0, n, step)


async def acount(n: int) -> Any:
    """An async generator, for py:stream."""
    for i in range(n):
        await asyncio.sleep(0)
        yield {"i": i, "none": None}


def registered_raw(name: Any) -> Any:
    """The raw reply to a ``registered`` request naming anything at all, as
    forged code could send it."""
    from erlang import _context, _wire

    context = _context.current()
    assert context is not None
    return context.bridge.request(_wire.REGISTERED, name)


# -- issue 25: what erlang_python users missed --------------------------------


def count_up(n: int) -> Any:
    """A generator of 1..n."""
    yield from range(1, n + 1)


def forever() -> Any:
    """A generator that never ends (stream_cancel stops it)."""
    i = 0
    while True:
        i += 1
        yield i


def broken_after(n: int) -> Any:
    """Yields 1..n, then raises."""
    yield from range(1, n + 1)
    raise RuntimeError("broken generator")


def busy(seconds: float) -> int:
    """Plain code that keeps the loop busy (only a deadline stops it)."""
    import time

    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def state_from_python(key: str, amount: int) -> Any:
    """erlang_python's Python side of the shared state."""
    from erlang import state_get, state_incr, state_set

    state_set(key + ".py", {"from": "python"})
    return [state_get(key), state_incr(key + ".hits", amount), state_get("missing", 0)]


def unconvertible(kind: str) -> Any:
    """A result without a term form."""
    import datetime

    class Custom:
        pass

    return {"set": {1, 2}, "custom": Custom(), "datetime": datetime.datetime(2020, 1, 1),
            "generator": (i for i in range(3))}[kind]


def root_log_level() -> int:
    import logging

    return logging.getLogger().level


def live_contexts() -> int:
    from erlang import _contexts

    return _contexts.live_count()


def virtual_env() -> Any:
    return os.environ.get("VIRTUAL_ENV")
