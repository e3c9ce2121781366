"""Python side of the interop suites (py_callback_SUITE, py_send_SUITE,
py_exec_SUITE, py_logging_SUITE, py_env_SUITE) and of the interop unit tests
(test/python/test_interop.py): functions run as tasks, which call back into
Erlang."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sys
import threading

import erlang

#: what the unit tests' tasks did, in order
RECORD: list[object] = []

# -- erlang.call / async_call --------------------------------------------------


def call(name, *args):
    return erlang.call(name, *args)


async def call_in_coroutine(name, *args):
    await asyncio.sleep(0)
    return erlang.call(name, *args)


async def async_call(name, *args):
    return await erlang.async_call(name, *args)


def call_error(name, *args, stack=False):
    """What erlang.call raised, as [ExceptionClass, erlang_class, reason,
    Stack]: Stack is the stack trace with ``stack`` true, else whether there
    is one."""
    try:
        erlang.call(name, *args)
    except erlang.CallError as exc:
        return [type(exc).__name__, exc.erlang_class, exc.reason,
                exc.stacktrace if stack else bool(exc.stacktrace)]
    except Exception as exc:
        return [type(exc).__name__, str(exc)]
    return "no exception"


def call_unconvertible(name):
    return call_error(name, {1, 2})


def call_then_record(name, tag):
    value = erlang.call(name, tag)
    RECORD.append(("returned", tag, value))
    return value


async def sleep_record(tag, seconds):
    await asyncio.sleep(seconds)
    RECORD.append(("slept", tag))
    return tag


def nested_depth_error(name):
    try:
        return erlang.call(name)
    except RecursionError as exc:
        return ["RecursionError", str(exc)]


async def call_from_thread(name, *args):
    # The thread needs the loop to send and to get the reply: wait for it
    # without blocking the loop (joining it here would deadlock).
    return await asyncio.to_thread(erlang.call, name, *args)


async def call_from_executor(name, *args):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: erlang.call(name, *args))


async def async_call_error(name, *args):
    try:
        await erlang.async_call(name, *args)
    except erlang.CallError as exc:
        return [type(exc).__name__, exc.erlang_class, exc.reason]
    return "no exception"


def chain(name, depth):
    """One level of a Python -> Erlang -> Python chain: calls the Erlang
    callback ``name`` with ``depth``, which runs ``chain`` again one level
    down (on whatever loop it chooses) until depth 0."""
    if depth == 0:
        return ["bottom", os.getpid()]
    below = erlang.call(name, depth - 1)
    return [depth, os.getpid(), below]


async def async_chain(name, depth):
    if depth == 0:
        return ["bottom", os.getpid()]
    below = await erlang.async_call(name, depth - 1)
    return [depth, os.getpid(), below]


async def chain_in_coroutine(name, depth):
    """A coroutine that makes the blocking call (not the async one)."""
    await asyncio.sleep(0)
    return chain(name, depth)


async def gather_async_calls(name, count):
    return await asyncio.gather(*(erlang.async_call(name, i) for i in range(count)))


def schedule(name, *args):
    return erlang.schedule(name, *args)


def schedule_py_sum(items, start=0, acc=0, steps=0):
    """Adds up ``items``, yielding to the loop whenever the time slice is
    used up; returns [sum, number of continuations]."""
    for i in range(start, len(items)):
        acc += items[i]
        if erlang.consume_time_slice(10):
            return erlang.schedule_py("pyport_interop_helpers", "schedule_py_sum",
                                      [items], {"start": i + 1, "acc": acc,
                                                "steps": steps + 1})
    return [acc, steps]


def schedule_py_chain(n, acc=0):
    if n == 0:
        return acc
    return erlang.schedule_py("pyport_interop_helpers", "schedule_py_chain", [n - 1],
                              {"acc": acc + n})


def schedule_py_async(value):
    return erlang.schedule_py("pyport_interop_helpers", "sleep_record", [value, 0])


def time_slices(percent, steps):
    """How many of ``steps`` reports of ``percent`` said 'yield'."""
    return sum(1 for _ in range(steps) if erlang.consume_time_slice(percent))


# -- erlang.send / self / whereis / atom ---------------------------------------


def send(dest, term):
    erlang.send(dest, term)
    return "sent"


def send_to_name(name, term):
    erlang.send(erlang.atom(name), term)
    return "sent"


async def send_async(dest, term, as_atom=False):
    await asyncio.sleep(0)
    erlang.send(erlang.atom(dest) if as_atom else dest, term)
    return "sent"


def send_many(dest, count):
    for i in range(count):
        erlang.send(dest, ("item", i))
    erlang.send(dest, "done")
    return count


def send_error(dest, term, as_name=False):
    try:
        erlang.send(erlang.atom(dest) if as_name else dest, term)
    except erlang.ProcessError as exc:
        return ["ProcessError", str(exc)]
    except TypeError as exc:
        return ["TypeError", str(exc)]
    return "sent"


def send_unconvertible(dest):
    try:
        erlang.send(dest, {1, 2})
    except TypeError as exc:
        return ["TypeError", str(exc)]
    return "sent"


def send_to_self(term):
    erlang.send(erlang.self(), term)
    return "sent"


async def send_to_self_async(term):
    await asyncio.sleep(0)
    erlang.send(erlang.self(), term)
    return "sent"


def self_pid():
    return erlang.self()


async def self_pid_later():
    await asyncio.sleep(0)
    return erlang.self()


def self_pid_in_thread():
    out = []
    t = threading.Thread(target=lambda: out.append(erlang.self()))
    t.start()
    t.join()
    return out[0]


def whereis(name):
    return erlang.whereis(name)


def make_atoms(prefix, count):
    """Makes ``count`` new atoms; returns how many it made before the limit."""
    made = 0
    try:
        for i in range(count):
            erlang.atom(f"{prefix}{i}")
            made += 1
    except erlang.AtomLimitError:
        return ["limit", made]
    return ["ok", made]


def atom_usage():
    from erlang._native import _pyport

    return list(_pyport.atom_usage())


# -- logging and output -------------------------------------------------------


def log(logger_name, level, message):
    logging.getLogger(logger_name).log(getattr(logging, level.upper()), "%s", message)
    return level


def log_exception(logger_name, message):
    try:
        raise ValueError("inner failure")
    except ValueError:
        logging.getLogger(logger_name).exception("%s", message)
    return True


def root_level():
    return logging.getLogger().getEffectiveLevel()


def print_line(text):
    print(text, flush=True)
    return True


def print_stderr(text):
    print(text, file=sys.stderr, flush=True)
    return True


def os_write(fd, text):
    os.write(fd, text.encode() + b"\n")
    return True


def c_write(fd, text):
    """write(2) from C, through ctypes: no Python buffering involved."""
    libc = ctypes.CDLL(None, use_errno=True)
    data = text.encode() + b"\n"
    return libc.write(fd, data, len(data))


def print_lines(prefix, count):
    print("\n".join(f"{prefix} {i}" for i in range(count)), flush=True)
    return count


# -- environments -------------------------------------------------------------


def import_and_call(module, func):
    mod = __import__(module, fromlist=[func])
    return getattr(mod, func)()


def module_file(module):
    return __import__(module).__file__


def loaded(module):
    return module in sys.modules


def env(name):
    return os.environ.get(name)


def sys_path():
    return list(sys.path)
