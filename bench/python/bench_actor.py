"""Python side of `make bench`'s actor scenarios (bench/pyport_bench.erl)."""

from __future__ import annotations

from typing import Any

import erlang


def bump(value: int) -> int:
    """The work of one call, as a plain task (the comparison)."""
    return value + 1


class Bumper(erlang.GenServer):
    """The same work as a gen_server: ``{bump, N}`` calls; casts counted,
    ``count`` reports them."""

    async def init(self) -> None:
        self.casts = 0

    async def handle_call(self, request: Any, from_: erlang.From) -> Any:
        if request == "count":
            return self.casts
        return bump(request[1])

    async def handle_cast(self, request: Any) -> None:
        self.casts += 1
