"""Python side of pyport's Common Test suites (ct/*_SUITE.erl).

The suites put this directory on ``sys.path`` through the ``python_path``
application environment. State lives in module globals so that one task can
record what happened and a later task can report it: a task run by one port
sees every earlier task of that port.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal

import erlang

_store: dict[object, object] = {}
_started: set[object] = set()
_cancelled: set[object] = set()
_sequences: dict[object, list[object]] = {}


def identity(value):
    return value


def echo_args(*args, **kwargs):
    """What the call received: ``[Args, Kwargs]``."""
    return [list(args), kwargs]


def type_name(value):
    return type(value).__name__


def type_names(values):
    """Type name of every element of a list, checked on the Python side."""
    return [type(v).__name__ for v in values]


def is_bool(value):
    return isinstance(value, bool)


def is_none(value):
    return value is None


def describe(value):
    """``[TypeName, repr]``, for values whose Python identity matters."""
    return [type(value).__name__, repr(value)]


def int_facts(value):
    """``[Value == 2**200, Value == -2**200, bit_length]``."""
    return [value == 2**200, value == -(2**200), value.bit_length()]


def big_ints():
    return [2**200, -(2**200), 2**64, -(2**63) - 1, 0]


def special_floats():
    return [math.nan, math.inf, -math.inf, 1.5, -0.0]


def python_values():
    """One value of every Python type the table converts to Erlang."""
    return {
        "str": "héllo",
        "bytes": b"\x00\xff",
        "true": True,
        "false": False,
        "none": None,
        "list": [1, 2],
        "tuple": (1, "a"),
        "dict": {"k": [1]},
        "atom": erlang.Atom("ok"),
        "float": 2.5,
        "int": 7,
    }


def atom(name):
    return erlang.Atom(name)


def nested_list(depth):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def depth_of(value):
    depth = 0
    while isinstance(value, list) and value:
        value = value[0]
        depth += 1
    return depth


def max_depth():
    from erlang._native import _pyport

    return _pyport.MAX_DEPTH


def make_object():
    return object()


def make_set():
    return {1, 2}


def raise_value_error(message):
    raise ValueError(message)


async def raise_later(message):
    await asyncio.sleep(0.01)
    raise ValueError(message)


async def sleep_then(seconds, value):
    await asyncio.sleep(seconds)
    return value


async def sleep_kw(seconds, *, value):
    await asyncio.sleep(seconds)
    return value


async def watched_sleep(key, seconds):
    """Sleep, recording start and cancellation under ``key``."""
    _started.add(key)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _cancelled.add(key)
        raise
    return key


def was_started(key):
    return key in _started


def was_cancelled(key):
    return key in _cancelled


def remember(key, value=None):
    _store[key] = value


def recall(key):
    return _store.get(key)


def append(key, item):
    _sequences.setdefault(key, []).append(item)
    return item


async def append_async(key, item):
    # Before the first await, so the order is the order the tasks started.
    _sequences.setdefault(key, []).append(item)
    await asyncio.sleep(0)
    return item


def sequence(key):
    return _sequences.get(key, [])


def getpid():
    return os.getpid()


def exit_process(status):
    os._exit(status)


def kill_process():
    os.kill(os.getpid(), signal.SIGKILL)


async def kill_process_after(seconds):
    await asyncio.sleep(seconds)
    os.kill(os.getpid(), signal.SIGKILL)


def log_warning(logger_name, message):
    import logging

    logging.getLogger(logger_name).warning("%s", message)
    return True


def print_lots(count):
    """Write to fds 1 and 2, which must not reach the packet channel."""
    import sys

    print("x" * count)
    print("stderr line", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, b"raw write on fd 1\n")
    return count


def block(seconds):
    """Block the whole loop inside a C call (time.sleep)."""
    import time

    time.sleep(seconds)
    return seconds
