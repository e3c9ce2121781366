"""Fixtures of ct/py_features_hostile_SUITE.erl: Python code that misuses
the features (handles, actors, the venv installer) the way a hostile or
careless user would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import weakref
from typing import Any

import erlang


class Counter:
    """A stateful object with no term form."""

    def __init__(self, start: int = 0) -> None:
        self.n = start

    def add(self, k: int = 1) -> int:
        self.n += k
        return self.n


class Unconvertible:
    """An object whose term form raises."""

    def __erlang__(self) -> Any:
        raise ValueError("no term form for you")


#: the one Counter every caller of shared() gets, as one wrapper: Python
#: hands the same handle to whoever asks
_shared: list[Any] = []


def shared(pid: erlang.Pid) -> Any:
    """The module's shared Counter as a handle; ``pid`` is told
    ``{finalized, shared}`` when Python frees it."""
    if not _shared:
        obj = Counter(10)
        weakref.finalize(obj, erlang.send, pid, (erlang.Atom("finalized"), "shared"))
        _shared.append(erlang.handle(obj))
    return _shared[0]


def shared_then_bad() -> list[Any]:
    """The shared handle next to a part that cannot be converted: the
    result fails, and must not take the shared object with it."""
    return [_shared[0], erlang.handle(Counter(1)), Unconvertible()]


def watched(pid: erlang.Pid, tag: str) -> Counter:
    """A Counter that tells ``pid`` ``{finalized, Tag}`` when freed."""
    obj = Counter()
    weakref.finalize(obj, erlang.send, pid, (erlang.Atom("finalized"), tag))
    return obj


def counters(n: int) -> list[Any]:
    return [erlang.handle(Counter(i)) for i in range(n)]


async def forge_actor_replies(count: int) -> int:
    """A plain task that sends ``count`` ``actor_reply`` packets naming its
    own task id, as if it were an actor answering calls."""
    from erlang import _context, _wire

    context = _context.current()
    assert context is not None
    server: Any = context.bridge.link
    me = asyncio.current_task()
    ids = [job.id for job in server.tasks.jobs.values() if job.task is me]
    assert len(ids) == 1, ids
    for token in range(1, count + 1):
        server.queue(_wire.actor_reply(ids[0], token, "forged"))
        if token % 1000 == 0:
            await asyncio.sleep(0)
    # Let the packets reach Erlang before the result does.
    await asyncio.sleep(0.05)
    return count


class Echo(erlang.GenServer):
    """Answers each call with the request."""

    async def handle_call(self, request: Any, from_: Any) -> Any:
        return request


async def deaf() -> None:
    """An actor that never receives."""
    await asyncio.sleep(3600)


def fake_pip(pid_file: str) -> None:
    """The body of a stand-in ``pip``: a build subprocess that outlives any
    kill of pip alone, its pid written down, then pip waits for ever."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(pid_file + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}\n")
    os.rename(pid_file + ".tmp", pid_file)
    child.wait()


def counter_handle() -> Any:
    return erlang.handle(Counter(0))


def count_of(counter: Counter) -> int:
    return counter.n
