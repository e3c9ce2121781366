"""Fixtures of the core's fault cases (py_fault_SUITE): a port that keeps
writing to Erlang but no longer reads what Erlang writes to it."""

from __future__ import annotations

import threading
import time

from pyport_hostile import _channel_fd, _write_all, spin_catching


def chatty_spin(frame: bytes | str, interval: float) -> None:
    """A thread writes ``frame`` (a whole packet built by the suite) to the
    output channel every ``interval`` seconds, while the loop's thread
    spins for ever, swallowing every cancel: the port sends, never reads."""
    raw = frame.encode() if isinstance(frame, str) else bytes(frame)
    fd = _channel_fd()

    def chatter() -> None:
        while True:
            _write_all(fd, raw)
            time.sleep(interval)

    threading.Thread(target=chatter, daemon=True).start()
    spin_catching()
