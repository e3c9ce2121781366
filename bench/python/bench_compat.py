"""Scenario 11 of bench/pyport_bench.erl: continuation chains."""

from __future__ import annotations

from typing import Any

import erlang


def inline_chain(n: int) -> Any:
    """``n`` steps continued with ``erlang.schedule_inline``."""
    if n <= 1:
        return 0
    return erlang.schedule_inline("bench_compat", "inline_chain", [n - 1])


def py_chain(n: int) -> Any:
    """``n`` steps continued with ``erlang.schedule_py`` (a loop turn each)."""
    if n <= 1:
        return 0
    return erlang.schedule_py("bench_compat", "py_chain", [n - 1])
