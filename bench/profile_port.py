"""Profile the port's per-task Python path without Erlang (issue 6).

``priv/pyport run bench/profile_port.py [sync|coro] [N] [--no-profile]`` feeds N task
packets through real pipes to a PortServer in this process, in batches of
100 (as a busy Erlang side would), runs the loop until every reply is
written, and prints cProfile's top entries by own time plus tasks/s.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))

import _pyport  # noqa: E402
import erlang  # noqa: E402
from erlang._server import PortServer  # noqa: E402

Atom = erlang.Atom


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    profiling = "--no-profile" not in sys.argv
    kind = args[0] if args else "sync"
    n = int(args[1]) if len(args) > 1 else 20000
    func = "echo" if kind == "sync" else "aecho"
    to_port_r, to_port_w = os.pipe()
    from_port_r, from_port_w = os.pipe()
    loop = erlang.new_event_loop()
    server = PortServer(loop, _pyport.Channel(to_port_r, from_port_w))
    packets = []
    for i in range(n):
        data = _pyport.encode((Atom("task"), i, Atom("bench_tasks"), func, [i], {}, {}))
        packets.append(struct.pack(">I", len(data)) + data)

    def feed() -> None:
        for k in range(0, n, 100):
            os.write(to_port_w, b"".join(packets[k:k + 100]))

    replies = [0]

    def drain() -> None:
        # Count reply frames (plus the ready packet) and stop the loop.
        buf = b""
        while replies[0] < n + 1:
            buf += os.read(from_port_r, 1 << 16)
            while len(buf) >= 4:
                size = struct.unpack(">I", buf[:4])[0]
                if len(buf) < 4 + size:
                    break
                buf = buf[4 + size:]
                replies[0] += 1
        # The port's loop is stopped by its server, not by a bare loop.stop().
        loop.call_soon_threadsafe(server.stop)

    reader = threading.Thread(target=drain)
    reader.start()
    server.start()
    writer = threading.Thread(target=feed)
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    writer.start()
    if profiling:
        profile.enable()
    loop.run_forever()
    if profiling:
        profile.disable()
    elapsed = time.perf_counter() - t0
    writer.join()
    reader.join()
    how = "under cProfile" if profiling else "unprofiled"
    print(f"{kind}: {n} tasks in {elapsed:.2f} s {how} = {n / elapsed:.0f} tasks/s")
    if profiling:
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
