"""Fixtures of ct/py_ops_SUITE.erl: logging, output and the environment."""

from __future__ import annotations

import asyncio
import logging
import os

_log = logging.getLogger("pyport_ops")


def log_info(text: str) -> str:
    """One ``info`` record (shown only when the root level lets it through)."""
    _log.info("%s", text)
    return text


def print_then_log(n: int) -> int:
    """``n`` pairs of a stdout line and a warning record, alternating."""
    for i in range(n):
        print(f"line {i}", flush=True)
        _log.warning("record %d", i)
    return n


def getenv(name: str) -> str | None:
    return os.environ.get(name)


async def sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"
