"""`make bench-loop`: ErlangEventLoop side by side with stock asyncio and uvloop.

Run with plain ``python3 bench/loop_bench.py``: it alternates child
processes -- stock asyncio and uvloop under plain CPython, ErlangEventLoop
(``erlang``, the native scheduling core) and its Python-only fallback
ErlangSelectorEventLoop (``erlang-selector``, ``PYPORT_LOOP=selector``) under
``priv/pyport run`` (the same CPython, embedded) -- for several rounds,
and prints medians (min..max) plus each figure's ratio to stock asyncio.
A child run is ``--child LOOP``: it measures every scenario once and prints
one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
PYPORT = ROOT / "priv" / "pyport"

# name -> (unit, higher is better)
SCENARIOS: dict[str, tuple[str, bool]] = {
    "call_soon callbacks": ("/s", True),
    "call_later(0) timers": ("/s", True),
    "create_task + completion": ("tasks/s", True),
    "sleep(0.001) p50": ("ms", False),
    "sleep(0.001) p99": ("ms", False),
    "TCP echo 1 B": ("round trips/s", True),
    "TCP echo 4 KiB": ("round trips/s", True),
    "UDP echo": ("round trips/s", True),
    "idle CPU over 5 s": ("ms", False),
}


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name in ("erlang", "erlang-selector"):
        import erlang

        return erlang.new_event_loop  # the class follows PYPORT_LOOP
    raise SystemExit(f"unknown loop {name}")


def rate(count: int, started: float) -> float:
    return count / (time.perf_counter() - started)


async def scheduled(how: str, n: int) -> float:
    """Rate of `n` callbacks scheduled with call_soon, or call_later(0)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = [n]

    def cb() -> None:
        left[0] -= 1
        if left[0] == 0:
            done.set_result(None)

    t0 = time.perf_counter()
    if how == "call_soon":
        for _ in range(n):
            loop.call_soon(cb)
    else:
        for _ in range(n):
            loop.call_later(0, cb)
    await done
    return rate(n, t0)


async def tasks(n: int = 50_000) -> float:
    async def nothing() -> None:
        return None

    t0 = time.perf_counter()
    await asyncio.gather(*(asyncio.ensure_future(nothing()) for _ in range(n)))
    return rate(n, t0)


async def sleeps(n: int = 500) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await asyncio.sleep(0.001)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


async def tcp_echo(size: int, seconds: float = 1.0) -> float:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = b"x" * size
    count = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        writer.write(payload)
        await reader.readexactly(size)
        count += 1
    result = rate(count, t0)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return result


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future[bytes] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)


async def udp_echo(seconds: float = 1.0) -> float:
    loop = asyncio.get_running_loop()
    server, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", 0))
    addr = server.get_extra_info("sockname")
    client, proto = await loop.create_datagram_endpoint(UdpClient, remote_addr=addr)
    count = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        proto.waiter = loop.create_future()
        client.sendto(b"x")
        await proto.waiter
        count += 1
    result = rate(count, t0)
    client.close()
    server.close()
    return result


async def idle(seconds: float = 5.0) -> float:
    cpu0 = time.process_time()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu0) * 1000


def child(name: str) -> dict[str, float]:
    factory = loop_factory(name)
    out: dict[str, float] = {}

    def run(coro: Awaitable[Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)  # type: ignore[arg-type]

    out["call_soon callbacks"] = run(scheduled("call_soon", 200_000))
    out["call_later(0) timers"] = run(scheduled("call_later", 100_000))
    out["create_task + completion"] = run(tasks())
    out["sleep(0.001) p50"], out["sleep(0.001) p99"] = run(sleeps())
    out["TCP echo 1 B"] = run(tcp_echo(1))
    out["TCP echo 4 KiB"] = run(tcp_echo(4096))
    out["UDP echo"] = run(udp_echo())
    out["idle CPU over 5 s"] = run(idle())
    return out


def command(name: str) -> list[str]:
    script = str(Path(__file__).resolve())
    if name in ("erlang", "erlang-selector"):
        return [str(PYPORT), "run", script, "--child", name]
    return [sys.executable, script, "--child", name]


def child_env(name: str) -> dict[str, str]:
    return dict(os.environ, PYPORT_LOOP="selector" if name == "erlang-selector" else "native")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--child", help="measure one loop once and print JSON")
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "5")))
    ap.add_argument("--loops", default="asyncio,uvloop,erlang,erlang-selector")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return 0

    loops = args.loops.split(",")
    samples: dict[str, dict[str, list[float]]] = {n: {s: [] for s in SCENARIOS} for n in loops}
    for r in range(args.runs):
        for name in loops:
            out = subprocess.run(command(name), check=True, capture_output=True, text=True,
                                 env=child_env(name)).stdout
            for key, value in json.loads(out.strip().splitlines()[-1]).items():
                samples[name][key].append(value)
        print(f"round {r + 1}/{args.runs} done", file=sys.stderr)

    width = 28
    ratios = [n for n in ("erlang", "erlang-selector") if n in loops]
    print(f"\n== loop bench: median (min..max) over {args.runs} runs; "
          f"ratios to asyncio's median ==")
    print(f"{'scenario':<26}" + "".join(f"{n:>{width}}" for n in loops)
          + "".join(f"{'x ' + n:>18}" for n in ratios) + "  unit")
    results: dict[str, Any] = {"runs": args.runs, "figures": {}}
    for scenario, (unit, higher) in SCENARIOS.items():
        cells, medians = [], {}
        for name in loops:
            xs = samples[name][scenario]
            med = statistics.median(xs)
            medians[name] = med
            cells.append(f"{fmt(med)} ({fmt(min(xs))}..{fmt(max(xs))})")
        shown = []
        for name in ratios:
            base = medians.get("asyncio")
            shown.append(f"{medians[name] / base:.2f}" if base else "-")
        print(f"{scenario:<26}" + "".join(f"{c:>{width}}" for c in cells)
              + "".join(f"{r:>18}" for r in shown) + f"  {unit}"
              + ("" if higher else " (lower is better)"))
        results["figures"][scenario] = {"unit": unit, "higher_is_better": higher, "samples": samples_of(samples, scenario)}
    outdir = ROOT / "bench" / "results"
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"loop-bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"results written to {path}")
    return 0


def samples_of(samples: dict[str, dict[str, list[float]]], scenario: str) -> dict[str, list[float]]:
    return {name: s[scenario] for name, s in samples.items()}


def fmt(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3f}"


if __name__ == "__main__":
    sys.exit(main())
