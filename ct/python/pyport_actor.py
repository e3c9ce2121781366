"""Python side of ct/py_actor_SUITE.erl: actors, well-behaved and not.

What the suite checks afterwards (a ``finally`` that ran, a message count)
lives in module globals, reported by plain task functions on the same loop.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import erlang
import erlang._actor

#: names of actors whose finally ran (cancelled_ran)
finished: list[str] = []
#: actors that have started waiting, by name
waiting: set[str] = set()


async def echo() -> None:
    """Replies ``{echo, Msg}`` to ``{From, Msg}`` until ``stop``."""
    while True:
        message = await erlang.receive()
        if message == "stop":
            return
        sender, body = message
        erlang.send(sender, ("echo", body))


async def echo_self() -> None:
    """Sends its own pid (the proxy's) to whoever asks: ``{who, From}``."""
    message = await erlang.receive()
    erlang.send(message[1], ("self", erlang.self()))
    await erlang.receive()


async def raises(after: str) -> None:
    """Raises ValueError once it gets a message."""
    await erlang.receive()
    raise ValueError(after)


async def receive_timeout(sender: erlang.Pid, seconds: float) -> None:
    """Tells ``sender`` whether a receive with a timeout timed out."""
    try:
        message = await erlang.receive(timeout=seconds)
    except TimeoutError:
        erlang.send(sender, "timed_out")
    else:
        erlang.send(sender, ("got", message))
    await erlang.receive()


async def selective(sender: erlang.Pid) -> None:
    """Takes ``urgent`` messages first, then the rest in order."""
    first = await erlang.receive(tags=["urgent"])
    second = await erlang.receive(match=lambda m: m == "b")
    rest = [await erlang.receive() for _ in range(2)]
    erlang.send(sender, [first, second, *rest])
    await erlang.receive()


async def guarded(name: str) -> None:
    """Waits forever; its finally records ``name`` (cancelled_ran)."""
    try:
        waiting.add(name)
        await erlang.receive()
    finally:
        finished.append(name)


def finished_names() -> list[str]:
    return list(finished)


def is_waiting(name: str) -> bool:
    return name in waiting


async def slow_sink(sender: erlang.Pid, count: int, delay: float) -> None:
    """Consumes ``count`` messages slowly, checking they come in order."""
    expected = 0
    for _ in range(count):
        message = await erlang.receive()
        if message != ("n", expected):
            raise AssertionError(f"message {expected} out of order: {message!r}")
        expected += 1
        if expected % 1000 == 0:
            await asyncio.sleep(delay)
    erlang.send(sender, ("sunk", expected))
    await erlang.receive()


async def idle() -> None:
    """An actor that waits for one message and returns."""
    await erlang.receive()


def rss_kib() -> int:
    """This port's resident set size, in KiB."""
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def actor_count() -> int:
    """How many actor tasks run on this loop."""
    return sum(1 for t in asyncio.all_tasks() if t.get_name().startswith("pyport:actor:"))


def getpid() -> int:
    return os.getpid()


def bump(value: int) -> int:
    """What the bench compares a call with: one plain task."""
    return value + 1


class Counter(erlang.GenServer):
    """A counter gen_server: ``{add, N}`` call, ``{set, N}`` cast, ``get``."""

    async def init(self, start: int = 0) -> None:
        self.value = start
        self.later: erlang.From | None = None

    async def handle_call(self, request: Any, from_: erlang.From) -> Any:
        if request == "get":
            return self.value
        if request == "bump":
            self.value += 1
            return self.value
        if isinstance(request, tuple) and request[0] == "add":
            self.value += request[1]
            return self.value
        if request == "later":
            self.later = from_
            return erlang.NOREPLY
        if request == "crash":
            raise RuntimeError("asked to crash")
        if request == "stop":
            self.stop()
            return "stopping"
        return ("unknown", request)

    async def handle_cast(self, request: Any) -> None:
        if isinstance(request, tuple) and request[0] == "set":
            self.value = request[1]
            if self.later is not None:
                self.later.reply(("later", self.value))
                self.later = None

    async def handle_info(self, message: Any) -> None:
        if isinstance(message, tuple) and message[0] == "tell":
            erlang.send(message[1], ("value", self.value))


class FailingInit(erlang.GenServer):
    async def init(self) -> None:
        raise KeyError("no config")


class CastsOnly(erlang.GenServer):
    """Overrides nothing but handle_cast: a call gets the base class's
    refusal."""

    async def handle_cast(self, request: Any) -> None:
        pass


def not_a_coroutine() -> int:
    return 1


class Sink(erlang.GenServer):
    """Takes ``{n, I}`` casts in order, slowly; ``stats`` call reports the
    count and the most messages its mailbox ever held."""

    async def init(self, delay: float) -> None:
        self.delay = delay
        self.count = 0
        self.most_held = 0

    async def handle_cast(self, request: Any) -> None:
        if request != ("n", self.count):
            raise AssertionError(f"cast {self.count} out of order: {request!r}")
        self.count += 1
        self.most_held = max(self.most_held, len(erlang._actor.current_mailbox("Sink")))
        if self.count % 1000 == 0:
            await asyncio.sleep(self.delay)

    async def handle_call(self, request: Any, from_: erlang.From) -> Any:
        return (self.count, self.most_held)


async def report_pid(sender: erlang.Pid) -> None:
    """Tells ``sender`` its port's OS pid, then waits."""
    erlang.send(sender, ("os_pid", os.getpid()))
    await erlang.receive()


async def calls_erlang(sender: erlang.Pid) -> None:
    """For each message, asks the ``actor_double`` callback twice (async
    and blocking) and sends both answers back."""
    while True:
        message = await erlang.receive()
        if message == "stop":
            return
        erlang.send(sender, (await erlang.async_call("actor_double", message),
                             erlang.call("actor_double", message)))


class Forger(Sink):
    """A Sink that first forges packets about itself and others: an ack far
    beyond its window, a reply to a call nobody made, an ack for an actor
    that does not exist, and a malformed ack."""

    async def init(self, delay: float) -> None:
        await super().init(delay)
        from erlang import _context, _wire

        mailbox = erlang._actor.current_mailbox("Forger")
        context = _context.current()
        assert context is not None
        queue = context.bridge.link.queue
        queue(_wire.actor_ack(mailbox.id, 1 << 20))
        queue(_wire.actor_reply(mailbox.id, 999999, "forged"))
        queue(_wire.actor_ack(erlang.Atom("not_a_ref"), 1))
        queue(_wire.actor_ack(mailbox.id, -5))


#: what Recorder.terminate was given, in order
terminated: list[Any] = []


class Recorder(erlang.GenServer):
    """Records its terminate reason; ``crash`` raises, ``stop`` stops."""

    async def handle_info(self, message: Any) -> None:
        if message == "crash":
            raise LookupError("crashed")
        if message == "stop":
            self.stop()

    async def terminate(self, reason: Any) -> None:
        terminated.append(reason if isinstance(reason, str) else type(reason).__name__)


class Spinner(erlang.GenServer):
    """``spin``: a handle_call that never awaits and never ends."""

    async def handle_call(self, request: Any, from_: erlang.From) -> Any:
        if request == "spin":
            while True:
                pass
        return request


async def spins_on(sender: erlang.Pid) -> None:
    """A bare actor whose step after its first message spins for ever."""
    await erlang.receive()
    erlang.send(sender, "spinning")
    while True:
        pass
