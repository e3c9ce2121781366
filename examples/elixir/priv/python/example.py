"""Python side of the Elixir example (examples/elixir)."""

from __future__ import annotations

import asyncio
from typing import Any


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
