"""Functions the interop tests run as ``interop_tasks.<name>`` tasks."""

from __future__ import annotations

import asyncio
import threading
import time

import erlang

RECORD: list[object] = []


def call(name, *args):
    return erlang.call(name, *args)


async def call_in_coroutine(name, *args):
    await asyncio.sleep(0)
    return erlang.call(name, *args)


async def async_call(name, *args):
    return await erlang.async_call(name, *args)


def call_error(name, *args):
    """What erlang.call raised: [ExceptionClass, erlang_class, reason]."""
    try:
        erlang.call(name, *args)
    except erlang.CallError as exc:
        return [type(exc).__name__, exc.erlang_class, exc.reason, exc.stacktrace]
    except Exception as exc:
        return [type(exc).__name__, str(exc)]
    return "no exception"


def call_then_record(name, tag):
    value = erlang.call(name, tag)
    RECORD.append(("returned", tag, value))
    return value


async def sleep_record(tag, seconds):
    await asyncio.sleep(seconds)
    RECORD.append(("slept", tag))
    return tag


def record(tag):
    RECORD.append(tag)
    return tag


def send(dest, term):
    erlang.send(dest, term)
    return "sent"


async def send_async(dest, term, as_atom=False):
    erlang.send(erlang.atom(dest) if as_atom else dest, term)
    await asyncio.sleep(0)
    return "sent"


def send_error(dest, term):
    try:
        erlang.send(dest, term)
    except erlang.ProcessError as exc:
        return ["ProcessError", str(exc)]
    except TypeError as exc:
        return ["TypeError", str(exc)]
    return "sent"


def send_atom(name, term):
    return send(erlang.atom(name), term)


def whereis(name):
    return erlang.whereis(name)


def whoami():
    return erlang.self()


async def whoami_later():
    await asyncio.sleep(0)
    return erlang.self()


def whoami_in_thread():
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(erlang.self()))
    t.start()
    t.join()
    return out[0]


async def call_from_thread(name, *args):
    # The thread needs the loop to send and to get the reply: wait for it
    # without blocking the loop (joining it here would deadlock).
    return await asyncio.to_thread(erlang.call, name, *args)


async def call_from_executor(name, *args):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: erlang.call(name, *args))


def schedule(name, *args):
    return erlang.schedule(name, *args)


def schedule_py_chain(n, acc=0):
    if n == 0:
        return acc
    return erlang.schedule_py("interop_tasks", "schedule_py_chain", [n - 1], {"acc": acc + n})


def schedule_py_async(value):
    return erlang.schedule_py("interop_tasks", "sleep_record", [value, 0])


def time_slices(percent, steps):
    """How many of ``steps`` reports of ``percent`` said 'yield'."""
    return sum(1 for _ in range(steps) if erlang.consume_time_slice(percent))


def atom_usage():
    from erlang._native import _pyport
    return list(_pyport.atom_usage())


def nested_depth_error(name):
    try:
        return erlang.call(name)
    except RecursionError as exc:
        return ["RecursionError", str(exc)]


def block(seconds):
    time.sleep(seconds)
    return seconds


def call_unconvertible(name):
    return call_error(name, {1, 2})
