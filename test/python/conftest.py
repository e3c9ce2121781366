"""Shared fixtures: every loop test runs on stdlib's loop and on ours.

Run inside pyport's executable: ``priv/pyport run -m pytest test/python``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import erlang

T = TypeVar("T")

# The Python fixtures shared with the Common Test suites (which put ct/python
# on the port's python_path) are imported from there: one copy of each.
_CT_PYTHON = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ct", "python"))
if _CT_PYTHON not in sys.path:
    sys.path.insert(0, _CT_PYTHON)

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "stdlib": asyncio.SelectorEventLoop,
    "erlang": erlang.ErlangEventLoop,
    "erlang-selector": erlang.ErlangSelectorEventLoop,
}

#: upper bound for any single loop test; a broken wake-up fails, never hangs
TEST_TIMEOUT = 20.0


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    return LOOP_FACTORIES[request.param]


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left, shut down generators and executor, close."""
    if loop.is_closed():
        return
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


@pytest.fixture
def loop(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> Iterator[asyncio.AbstractEventLoop]:
    loop = loop_factory()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        close_loop(loop)


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T],
        timeout: float = TEST_TIMEOUT) -> T:
    """Run ``coro`` on ``loop``, failing (not hanging) after ``timeout``."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def pyport_executable() -> str:
    """Path of priv/pyport (sys.executable inside it)."""
    here = os.path.dirname(os.path.abspath(__file__))
    exe = os.path.join(here, "..", "..", "priv", "pyport")
    if os.path.basename(sys.executable) == "pyport":
        return sys.executable
    return os.path.normpath(exe)
