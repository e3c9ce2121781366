"""Python actors: a coroutine that is an Erlang process (docs/actors.md).

``py_actor:start_link(M, F, A, Opts)`` starts an Erlang proxy process and
sends ``{actor_start, Id, M, F, Args, Kwargs, Opts}``; the port runs
``M.F(*A)`` (a coroutine, or an :class:`GenServer` subclass) as an asyncio
Task tracked like any task of Erlang's: its end is ``{result, Id, _}`` and a
``{cancel, Id}`` (the proxy died) cancels it. What is sent to the proxy
arrives as ``{actor_msg, Id, Msg}`` and waits in the actor's
:class:`Mailbox` for :func:`receive`.

Flow control: Erlang sends at most ``window`` messages ahead of what the
actor has consumed. The mailbox acknowledges consumption in batches
(``{actor_ack, Id, N}`` once half a window is consumed), and before the
actor waits with half a window or more unacknowledged, so Erlang always has
credit while Python waits. A selective receive that skips messages
acknowledges them too when it waits: like Erlang's own, a mailbox full of
messages nobody matches grows (here in Python's memory).

Deadline: with ``step_ms`` in its options, each step of the actor (its code
between two awaits: a handler that never awaits is one step) runs under the
watchdog (``erlang._deadline.StepBounded``); one still running after that
many milliseconds gets ``TaskDeadline`` raised in it, which ends the actor
with ``timeout`` instead of holding the loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import inspect
from typing import Any, Callable, Final, Iterable, Protocol

from . import _wire
from ._deadline import StepBounded
from ._interop import current_caller
from ._types import Pid

__all__ = ["Actors", "From", "GenServer", "Mailbox", "NOREPLY", "receive", "reply"]

DEFAULT_WINDOW = 128


class ActorHost(Protocol):
    """The port server, as the actors see it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def queue(self, term: Any) -> None:
        """Queue ``term`` for Erlang; ``TypeError`` if it has no Erlang form."""
        ...

    def send(self, term: Any) -> None:
        """Queue ``term`` for Erlang, logging one that cannot be encoded."""
        ...

    def log(self, level: str, message: str) -> None: ...

    def lookup(self, module_name: Any, func_name: Any) -> Callable[..., Any]:
        """``module.func``, imported and resolved as for tasks."""
        ...

    def adopt(self, id: Any, label: str, task: asyncio.Task[Any]) -> None:
        """Track ``task`` as Erlang's task ``id`` (result, failure, cancel)."""
        ...


#: the actor whose Task is running (copied into Tasks it creates)
current_actor: contextvars.ContextVar[Mailbox | None] = contextvars.ContextVar(
    "erlang_actor", default=None)

_TIMED_OUT: Final = object()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_TIMED_OUT)


class Mailbox:
    """One actor's messages, delivered in order by the port server."""

    __slots__ = ("id", "host", "ack_every", "_queue", "_waiter", "_delivered",
                 "_acked")

    def __init__(self, id: Any, host: ActorHost, window: int) -> None:
        self.id = id
        self.host = host
        self.ack_every = max(1, (window + 1) // 2)
        self._queue: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[Any] | None = None
        self._delivered = 0
        self._acked = 0

    def __len__(self) -> int:
        return len(self._queue)

    def deliver(self, message: Any) -> None:
        self._queue.append(message)
        self._delivered += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def drop(self, reason: str) -> None:
        """A message that had no Python form: it counts as consumed."""
        self._delivered += 1
        self.host.log("warning", f"a message to actor {self.id!r} has no Python "
                                 f"form and was dropped: {reason}")
        self._ack_if(self._delivered - len(self._queue))

    def _ack_if(self, upto: int) -> None:
        count = upto - self._acked
        if count >= self.ack_every:
            self._acked = upto
            self.host.send(_wire.actor_ack(self.id, count))

    def _take(self, index: int) -> Any:
        queue = self._queue
        if index == 0:
            message = queue.popleft()
        else:
            message = queue[index]
            del queue[index]
        self._ack_if(self._delivered - len(queue))
        return message

    async def receive(self, timeout: float | None = None,
                      match: Callable[[Any], bool] | None = None) -> Any:
        """The next message (the first ``match`` accepts); ``TimeoutError``
        when none comes within ``timeout`` seconds."""
        loop = self.host.loop
        deadline = None if timeout is None else loop.time() + max(0.0, timeout)
        while True:
            queue = self._queue
            if match is None:
                if queue:
                    return self._take(0)
            else:
                for index, message in enumerate(queue):
                    if match(message):
                        return self._take(index)
            if self._waiter is not None:
                raise RuntimeError(f"actor {self.id!r}: another receive is waiting "
                                   "on this mailbox")
            # Whatever is held here (taken or skipped) is acknowledged
            # before waiting, so Erlang has credit to send what we wait for.
            self._ack_if(self._delivered)
            waiter = loop.create_future()
            timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
            self._waiter = waiter
            try:
                if await waiter is _TIMED_OUT:
                    raise TimeoutError(f"erlang.receive(): nothing within {timeout} s")
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()


def _tag_matcher(tags: Iterable[Any]) -> Callable[[Any], bool]:
    wanted = frozenset(tags)

    def match(message: Any) -> bool:
        if isinstance(message, tuple):
            return bool(message) and _hashable_in(message[0], wanted)
        return _hashable_in(message, wanted)

    return match


def _hashable_in(value: Any, wanted: frozenset[Any]) -> bool:
    try:
        return value in wanted
    except TypeError:  # a list or dict: no tag
        return False


def current_mailbox(what: str) -> Mailbox:
    mailbox = current_actor.get()
    if mailbox is None:
        raise RuntimeError(f"{what} works only inside an actor "
                           "(py_actor:start_link/4 in Erlang)")
    return mailbox


async def receive(timeout: float | None = None, *,
                  match: Callable[[Any], bool] | None = None,
                  tags: Iterable[Any] | None = None) -> Any:
    """``await erlang.receive()``: the actor's next message.

    ``timeout`` (seconds) raises :class:`TimeoutError` when nothing comes
    in time. Selective forms: ``match`` (a predicate) or ``tags`` (the
    message, or its first element when it is a tuple, is one of them);
    messages they skip stay in the mailbox, in order, for a later receive.
    Only inside an actor (``py_actor:start_link/4``)."""
    mailbox = current_mailbox("erlang.receive()")
    if tags is not None:
        if match is not None:
            raise TypeError("erlang.receive(): give match or tags, not both")
        match = _tag_matcher(tags)
    return await mailbox.receive(timeout, match)


class From:
    """Where a ``gen_server:call`` is answered: :meth:`reply` (or
    :func:`reply`) once, from any task of the loop."""

    __slots__ = ("mailbox", "token")

    def __init__(self, mailbox: Mailbox, token: int) -> None:
        self.mailbox = mailbox
        self.token = token

    def reply(self, value: Any) -> None:
        """Send ``value`` to the caller; ``TypeError`` if it has no Erlang form."""
        self.mailbox.host.queue(_wire.actor_reply(self.mailbox.id, self.token, value))

    def __repr__(self) -> str:
        return f"<From {self.token} of actor {self.mailbox.id!r}>"


def reply(from_: From, value: Any) -> None:
    """``erlang.reply(from_, value)``: answer a call later (see GenServer)."""
    from_.reply(value)


class _NoReply:
    __slots__ = ()

    def __repr__(self) -> str:
        return "erlang.NOREPLY"


#: what ``handle_call`` returns to answer later with :func:`reply`
NOREPLY: Final = _NoReply()

_GEN_CALL = "$gen_call"
_GEN_CAST = "$gen_cast"


class GenServer:
    """A gen_server written in Python, run as an actor.

    ``py_actor:start_link(Module, 'ClassName', Args, Opts)`` makes an
    instance (no arguments), awaits ``init(*Args, **kwargs)`` (the start
    returns when it has), then serves its mailbox: ``gen_server:call/2,3``
    goes to :meth:`handle_call`, whose return value is the reply (or
    :data:`NOREPLY`, then answer with ``from_.reply(value)``);
    ``gen_server:cast/2`` to :meth:`handle_cast`; any other message to
    :meth:`handle_info`. :meth:`stop` ends the actor (the proxy exits
    ``normal``) once the current handler returns; a handler that raises
    ends it with that error. :meth:`terminate` runs in every case, with
    ``"normal"``, ``"cancelled"`` or the exception.
    """

    _stopping = False

    async def init(self, *args: Any, **kwargs: Any) -> None:
        """Set up the state; raising fails the start."""

    async def handle_call(self, request: Any, from_: From) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not handle calls "
                                  f"({request!r})")

    async def handle_cast(self, request: Any) -> None:
        """Casts are ignored unless overridden."""

    async def handle_info(self, message: Any) -> None:
        """Other messages are ignored unless overridden."""

    async def terminate(self, reason: Any) -> None:
        """Runs when the actor ends, however it ends."""

    def stop(self) -> None:
        """End the actor normally once the current handler returns."""
        self._stopping = True

    async def serve(self, mailbox: Mailbox, args: Any, kwargs: dict[str, Any]) -> None:
        """The actor's body: ``init``, then the mailbox until ``stop``."""
        await self.init(*args, **kwargs)
        mailbox.host.send(_wire.actor_started(mailbox.id))
        reason: Any = "normal"
        try:
            while not self._stopping:
                message = await mailbox.receive()
                if type(message) is tuple and len(message) == 3 and message[0] == _GEN_CALL \
                        and type(message[1]) is int:
                    from_ = From(mailbox, message[1])
                    answer = await self.handle_call(message[2], from_)
                    if answer is not NOREPLY:
                        from_.reply(answer)
                elif type(message) is tuple and len(message) == 2 and message[0] == _GEN_CAST:
                    await self.handle_cast(message[1])
                else:
                    await self.handle_info(message)
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        except BaseException as exc:
            reason = exc
            raise
        finally:
            await self.terminate(reason)


class Actors:
    """The actors of one port server, by id."""

    def __init__(self, host: ActorHost) -> None:
        self.host = host
        self._mailboxes: dict[Any, Mailbox] = {}

    def __len__(self) -> int:
        return len(self._mailboxes)

    def start(self, id: Any, module_name: Any, func_name: Any, args: Any,
              kwargs: Any, opts: Any) -> None:
        """``{actor_start, Id, M, F, Args, Kwargs, Opts}``."""
        host = self.host
        label = f"{module_name}.{func_name}"
        opts = opts if isinstance(opts, dict) else {}
        caller = opts.get(_wire.OPT_CALLER)
        window = opts.get(_wire.OPT_WINDOW, DEFAULT_WINDOW)
        mailbox = Mailbox(id, host, window if type(window) is int and window > 0
                          else DEFAULT_WINDOW)
        step = opts.get(_wire.OPT_STEP)
        actor_token = current_actor.set(mailbox)
        caller_token = current_caller.set(caller if isinstance(caller, Pid) else None)
        try:
            if id in self._mailboxes:
                raise ValueError(f"actor {id!r} is running already")
            target = host.lookup(module_name, func_name)
            if not isinstance(args, (list, tuple)):
                raise TypeError(f"actor arguments must be a list, not {type(args).__name__}")
            if not isinstance(kwargs, dict):
                raise TypeError(f"actor kwargs must be a map, not {type(kwargs).__name__}")
            body: Any
            generic = not (isinstance(target, type) and issubclass(target, GenServer))
            if generic:
                body = target(*args, **kwargs)
                if not inspect.iscoroutine(body):
                    raise TypeError(f"an actor is a coroutine function or an "
                                    f"erlang.GenServer subclass; {label} returned "
                                    f"{type(body).__name__}")
            else:
                body = target().serve(mailbox, args, kwargs)
            if isinstance(step, (int, float)) and not isinstance(step, bool) and step >= 0:
                body = StepBounded(body, step / 1000.0)
            # The Task copies the context: receive() finds the mailbox,
            # erlang.self() is the proxy.
            task = host.loop.create_task(body, name=f"pyport:actor:{label}")
        except BaseException as exc:  # the start's error, as for tasks
            host.send(_wire.result_error(id, _wire.python_error(exc)))
            return
        finally:
            current_caller.reset(caller_token)
            current_actor.reset(actor_token)
        self._mailboxes[id] = mailbox
        task.add_done_callback(lambda _: self._forget(id, mailbox))
        host.adopt(id, label, task)
        if generic:
            host.send(_wire.actor_started(id))

    def _forget(self, id: Any, mailbox: Mailbox) -> None:
        if self._mailboxes.get(id) is mailbox:
            del self._mailboxes[id]

    def deliver(self, id: Any, message: Any) -> None:
        """``{actor_msg, Id, Msg}``; for an actor that has ended, dropped
        (as Erlang drops a message to a dead process)."""
        mailbox = self._mailboxes.get(id)
        if mailbox is not None:
            mailbox.deliver(message)

    def drop(self, id: Any, reason: str) -> None:
        """An ``actor_msg`` whose message had no Python form."""
        mailbox = self._mailboxes.get(id)
        if mailbox is not None:
            mailbox.drop(reason)
