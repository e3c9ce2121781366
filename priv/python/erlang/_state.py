"""erlang_python's shared state from Python: ``erlang.state_set``,
``state_get`` and friends (docs/porting.md, "Shared state").

The store is kept in Erlang (``pyport_state``, an ETS table owned by a
process of pyport's supervisor), not in the port: every loop sees the same
store, and it survives a port restart. Each function is one
``erlang.call`` of the internal callback ``_pyport_state``. Keys and
values are converted as any term is: a Python ``str`` key is an Erlang
binary, so Erlang's ``py:state_fetch(<<"k">>)`` reads ``state_set('k', v)``.
"""

from __future__ import annotations

from typing import Any

from ._interop import call

__all__ = ["StateError", "state_clear", "state_decr", "state_delete", "state_get",
           "state_incr", "state_keys", "state_set"]

CALLBACK = "_pyport_state"


class StateError(RuntimeError):
    """The store refused: too many keys, a value too large, a counter that
    is not an integer. The message says which and the limit."""


def _request(op: str, *args: Any) -> Any:
    reply = call(CALLBACK, op, *args)
    if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == "error":
        raise StateError(_describe(reply[1]))
    return reply


def _describe(reason: Any) -> str:
    if isinstance(reason, tuple) and reason and reason[0] == "state_full":
        return (f"shared state full: it holds its maximum of {reason[1]} keys "
                "(state_max_keys); delete keys with state_delete")
    if isinstance(reason, tuple) and reason and reason[0] == "state_value_too_large":
        return (f"shared state value of {reason[1]} bytes is over the limit of "
                f"{reason[2]} bytes (state_max_value_bytes); store a smaller value")
    if isinstance(reason, tuple) and reason and reason[0] == "not_a_counter":
        return f"shared state key {reason[1]!r} holds a value that is not an integer"
    return f"shared state: {reason!r}"


def state_set(key: Any, value: Any) -> None:
    """Store ``value`` under ``key``."""
    _request("store", key, value)


def state_get(key: Any, default: Any = None) -> Any:
    """The value under ``key``, or ``default`` (None) when there is none."""
    found = call(CALLBACK, "fetch", key)  # {ok, Value} | {error, not_found}
    if isinstance(found, tuple) and len(found) == 2 and found[0] == "ok":
        return found[1]
    return default


def state_delete(key: Any) -> None:
    """Remove ``key`` (nothing happens if it is not there)."""
    _request("remove", key)


def state_keys() -> list[Any]:
    """Every key of the store."""
    keys: list[Any] = _request("keys")
    return keys


def state_clear() -> None:
    """Remove every key."""
    _request("clear")


def state_incr(key: Any, amount: int = 1) -> int:
    """Add ``amount`` to the integer under ``key`` (0 if absent), atomically
    across every loop; the new value."""
    value: int = _request("incr", key, amount)
    return value


def state_decr(key: Any, amount: int = 1) -> int:
    """:func:`state_incr` with ``-amount``."""
    return state_incr(key, -amount)
