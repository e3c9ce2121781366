"""Python side of the Elixir example (examples/elixir)."""

from __future__ import annotations

import asyncio
from typing import Any

import erlang


async def fetch(name: str, delay: float = 0.01) -> dict[str, Any]:
    """Pretends to fetch something, concurrently with the others."""
    await asyncio.sleep(delay)
    return {"name": name, "length": len(name), "missing": None}


def describe(user: dict[str, Any]) -> str:
    """An Elixir struct arrives as a dict with '__struct__'."""
    return f"{user['__struct__']}: {user['name']} ({user['age']})"


def options(**kwargs: Any) -> list[Any]:
    """Keyword lists arrive as keyword arguments."""
    return sorted(kwargs.items())


class Counter(erlang.GenServer):
    """A Python actor: an Erlang process Elixir calls with GenServer."""

    async def init(self, start: int) -> None:
        self.value = start

    async def handle_call(self, request: Any, from_: Any) -> Any:
        if request == "bump":
            self.value += 1
            return self.value
        if request == "nothing":
            return None
        return ("unknown", request)

    async def handle_cast(self, request: Any) -> None:
        if isinstance(request, tuple) and request[0] == "set":
            self.value = request[1]


async def countdown(n: int, delay: float = 0.0) -> Any:
    """An async generator: a stream of items, then None."""
    for i in range(n, 0, -1):
        await asyncio.sleep(delay)
        yield i
    yield None
