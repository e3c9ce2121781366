"""Misbehaving Python for the fault-injection suites (muontrap style).

Each function does one bad thing a real task might do: crash the process,
ignore cancellation, spin, block in C, flood stdout, leave subprocesses
behind, allocate without bound, or produce results faster than Erlang reads
them. The suites (ct/py_fault_SUITE.erl, ct/py_lifeline_SUITE.erl,
ct/py_stress_SUITE.erl) put this directory on ``sys.path``.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import random
import subprocess
import time

# Kept alive so that the objects' finalizers never reap or kill anything:
# the children must outlive everything but the port itself.
_children: list[object] = []
_cancel_counts: dict[object, int] = {}


# -- crashes ------------------------------------------------------------------


def segfault():
    """SIGSEGV: read address 0 through ctypes."""
    return ctypes.string_at(0)


def abort():
    """SIGABRT through the C library."""
    os.abort()


def exit_now(status):
    os._exit(status)


# -- cancellation and stuck interpreters ----------------------------------------


async def ignore_cancel(key):
    """Swallow every cancellation and keep going, forever."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            _cancel_counts[key] = _cancel_counts.get(key, 0) + 1


def cancel_count(key):
    return _cancel_counts.get(key, 0)


async def slow_cleanup(seconds):
    """Honour a cancel, but only after ``seconds`` of clean-up."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(seconds)
        raise


def busy_loop():
    """Spin in Python bytecode, never yielding to the loop."""
    x = 0
    while True:
        x += 1


async def busy_loop_async():
    """A coroutine that starts, then spins without awaiting."""
    await asyncio.sleep(0)
    busy_loop()


def blocking_sleep(seconds):
    """Block the loop in a C call that keeps the GIL released (time.sleep)."""
    time.sleep(seconds)
    return seconds


def ctypes_sleep(seconds):
    """Block the loop inside libc's sleep(3), called through ctypes."""
    libc = ctypes.CDLL(None)
    libc.sleep(int(seconds))
    return seconds


# -- output ------------------------------------------------------------------


def spam_stdout(lines):
    """Write ``lines`` short lines to fd 1 and fd 2, many tiny writes."""
    for i in range(lines):
        os.write(1 if i % 2 else 2, b"pyport-ct spam %d\n" % i)
    return lines


async def spam_stdout_async(lines, every):
    """The same, spread over loop iterations (one line, then a yield)."""
    for i in range(lines):
        os.write(1, b"pyport-ct spam %d\n" % i)
        if i % every == 0:
            await asyncio.sleep(0)
    return lines


# -- subprocesses ------------------------------------------------------------


def spawn_sleep():
    """``sleep 1000`` with subprocess.Popen; returns its OS pid."""
    proc = subprocess.Popen(["sleep", "1000"])
    _children.append(proc)
    return proc.pid


async def spawn_sleep_asyncio():
    """``sleep 1000`` through the loop's subprocess support; returns its pid."""
    proc = await asyncio.create_subprocess_exec("sleep", "1000")
    _children.append(proc)
    return proc.pid


def spawn_shell_tree():
    """A shell that starts ``sleep 1000`` as its own child (a grandchild of
    the port); returns the shell's pid."""
    proc = subprocess.Popen(["sh", "-c", "sleep 1000 & sleep 1000; wait"])
    _children.append(proc)
    return proc.pid


# -- memory ------------------------------------------------------------------


def allocate_forever(chunk_mb):
    """Allocate ``chunk_mb`` MiB at a time and keep it, until something gives."""
    hoard = []
    while True:
        hoard.append(bytearray(chunk_mb << 20))


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


# -- load ----------------------------------------------------------------------


def blob(size, _padding=None):
    """``size`` bytes: a large result (``_padding`` makes the task large too)."""
    return b"r" * size


async def random_work(max_ms):
    """Sleep a random time up to ``max_ms``; return the time slept."""
    ms = random.randint(0, max_ms)
    await asyncio.sleep(ms / 1000)
    return ms
