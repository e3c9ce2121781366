"""pyport's ``erlang`` package: asyncio on an Erlang port.

Runs inside pyport's executable (``priv/pyport``), in port mode under Erlang
or standalone (``priv/pyport run ...``, which behaves like ``python3``)::

    import erlang

    async def main():
        await erlang.sleep(0.1)
        return 42

    assert erlang.run(main()) == 42

See docs/event-loop.md for the loop's design and how it differs from stdlib
asyncio and from the NIF-based bridge whose API this follows. In port mode,
code can talk back to Erlang (``send``, ``call``, ``async_call``, ``self``,
``whereis``, ``atom``, ``schedule``, ``schedule_py``,
``consume_time_slice``): see docs/interop.md. Inside a Python actor
(``py_actor:start_link/4``), ``await receive()`` takes the next message and
``GenServer`` is the gen_server base class: see docs/actors.md. For code
ported from erlang_python: ``schedule_inline``, and Erlang functions
registered with ``py_callback:register/2`` as attributes
(``erlang.my_fun(1, 2)``, ``from erlang import my_fun``): see
docs/porting.md.
"""

from __future__ import annotations

from ._actor import NOREPLY, From, GenServer, receive, reply
from ._api import (
    ErlangEventLoopPolicy,
    ExecutionMode,
    detect_mode,
    install,
    new_event_loop,
    run,
    sleep,
    spawn_task,
)
from ._compat import ErlangFunction, callback_attribute, schedule_inline
from ._env import activate_venv
from ._handles import Handle, HandleLimitError, handle
from ._interop import (
    AtomLimitError,
    CallbackLimitError,
    CallError,
    NotConnectedError,
    ProcessError,
    UnknownCallbackError,
    async_call,
    atom,
    call,
    self,
    send,
    whereis,
)
from ._loop import ErlangEventLoop, ErlangSelectorEventLoop
from ._schedule import ScheduleMarker, consume_time_slice, schedule, schedule_py
from ._selector import PollerSelector
from ._state import (
    StateError,
    state_clear,
    state_decr,
    state_delete,
    state_get,
    state_incr,
    state_keys,
    state_set,
)
from ._types import Atom, Pid, Ref

__all__ = [
    "Atom",
    "AtomLimitError",
    "CallError",
    "CallbackLimitError",
    "ErlangEventLoop",
    "ErlangEventLoopPolicy",
    "ErlangFunction",
    "ErlangSelectorEventLoop",
    "ExecutionMode",
    "Handle",
    "HandleLimitError",
    "From",
    "GenServer",
    "NOREPLY",
    "NotConnectedError",
    "Pid",
    "PollerSelector",
    "ProcessError",
    "Ref",
    "ScheduleMarker",
    "StateError",
    "UnknownCallbackError",
    "activate_venv",
    "async_call",
    "atom",
    "call",
    "consume_time_slice",
    "detect_mode",
    "handle",
    "install",
    "new_event_loop",
    "receive",
    "reply",
    "run",
    "schedule",
    "schedule_inline",
    "schedule_py",
    "self",
    "send",
    "sleep",
    "spawn_task",
    "state_clear",
    "state_decr",
    "state_delete",
    "state_get",
    "state_incr",
    "state_keys",
    "state_set",
    "whereis",
]


def __getattr__(name: str) -> ErlangFunction:
    """``erlang.my_fun`` / ``from erlang import my_fun``: the Erlang function
    registered as ``my_fun`` (PEP 562; ``AttributeError`` when there is
    none, see ``erlang._compat.callback_attribute``)."""
    return callback_attribute(name)
