"""Functions that the PortServer tests call as ``pyport_tasks.<name>``."""

from __future__ import annotations

import asyncio
import logging
import threading

import erlang

RECORD: list[object] = []
EVENTS: dict[str, threading.Event] = {}


def add(a, b):
    return a + b


async def async_add(a, b, delay=0.0):
    await asyncio.sleep(delay)
    return a + b


def echo(*args, **kwargs):
    return [list(args), kwargs]


def fail(message):
    raise ValueError(message)


async def async_fail(message):
    await asyncio.sleep(0)
    raise KeyError(message)


def unconvertible():
    return object()


async def async_unconvertible():
    await asyncio.sleep(0)
    return {"ok": {1, 2}}


async def forever(tag=None):
    if tag is not None:
        RECORD.append(("started", tag))
    try:
        await asyncio.Event().wait()
    finally:
        if tag is not None:
            RECORD.append(("finally", tag))


async def swallow_cancel():
    try:
        await asyncio.sleep(100)
    except asyncio.CancelledError:
        return "swallowed"


def record(value):
    RECORD.append(value)
    return len(RECORD)


async def async_record(value):
    await asyncio.sleep(0)
    RECORD.append(value)


def big(n):
    return "x" * n


def spawn_from_sync(value):
    task = erlang.spawn_task(async_record(value))
    return type(task).__name__


def spawn_from_thread(value):
    done = threading.Event()
    EVENTS[value] = done

    def worker():
        fut = erlang.spawn_task(async_record(value))
        fut.result(timeout=10)
        done.set()

    threading.Thread(target=worker).start()
    return "started"


def log(name, level, message):
    logging.getLogger(name).log(getattr(logging, level.upper()), message)
    return "logged"


def log_from_thread(name, message):
    t = threading.Thread(target=lambda: logging.getLogger(name).error(message))
    t.start()
    t.join()
    return "logged"


def print_stdout(text):
    print(text, flush=True)
    return "printed"


not_callable = 42


class Calc:
    @staticmethod
    def triple(x):
        return 3 * x
