"""Python side of `make demo`: a few real asyncio tasks."""

import asyncio
import hashlib
import os


async def nap(name: str, seconds: float) -> dict:
    """Sleeps on the port's event loop; many naps overlap."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.sleep(seconds)
    return {"name": name, "slept": round(loop.time() - started, 3), "pid": os.getpid()}


async def gather_naps(count: int, seconds: float) -> list:
    """Runs `count` naps concurrently inside one task."""
    return await asyncio.gather(*(nap(f"inner{i}", seconds) for i in range(count)))


def digest(text: str, rounds: int) -> str:
    """A CPU-bound computation: iterated SHA-256."""
    data = text.encode()
    for _ in range(rounds):
        data = hashlib.sha256(data).digest()
    return data.hex()
