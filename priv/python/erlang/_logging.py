"""Port mode: Python's logging and output, for the OTP logger.

- :class:`ChannelLogHandler` sends Python logging records to Erlang as
  ``{log, Level, Logger, Message}`` (docs/protocol.md).

- :class:`OutputForwarder` catches what Python code and C extensions write to
  fds 1 and 2 (``print``, ``os.write(1, ...)``, ``write(2, ...)`` in C) with
  ``_pyport.OutputCapture`` and sends it to Erlang line by line as
  ``{output, stdout | stderr, Line}``; the worker logs stdout lines at
  ``info`` and stderr lines at ``warning`` (or writes them to the node's
  stderr, application env ``output``). Nothing reaches the packet channel
  on fds 3/4.
- :func:`python_level` maps an OTP logger level (the worker passes
  ``--log-level``) onto the root logger's level, so that records the OTP
  logger would drop are not sent at all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from ._link import ServerLink
from ._native import _pyport
from ._wire import log, output

__all__ = ["OTP_LEVELS", "ChannelLogHandler", "OutputForwarder", "level_name",
           "python_level"]

#: OTP logger level -> Python logging level
OTP_LEVELS: dict[str, int] = {
    "all": logging.NOTSET + 1,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": 25,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
    "none": logging.CRITICAL + 10,
}

_NAMES = ((logging.CRITICAL, "critical"), (logging.ERROR, "error"),
          (logging.WARNING, "warning"), (25, "notice"), (logging.INFO, "info"))


def python_level(otp_level: str) -> int:
    """The Python level matching OTP level ``otp_level`` (ValueError if unknown)."""
    try:
        return OTP_LEVELS[otp_level]
    except KeyError:
        raise ValueError(f"unknown OTP logger level {otp_level!r}; one of "
                         f"{', '.join(OTP_LEVELS)}") from None


def level_name(levelno: int) -> str:
    """The OTP level for a Python record's ``levelno``."""
    for threshold, name in _NAMES:
        if levelno >= threshold:
            return name
    return "debug"


def send_from_any_thread(server: ServerLink, term: Any) -> None:
    """Queue ``term`` for Erlang from any thread: the channel is only used
    from the loop thread, so other threads hand it over with
    ``call_soon_threadsafe``. Nothing is sent once the loop is closed."""
    try:
        if server.on_loop_thread():
            server.send(term)
        elif not server.loop.is_closed():
            server.loop.call_soon_threadsafe(server.send, term)
    except RuntimeError:
        pass  # the loop closed while we were at it


class ChannelLogHandler(logging.Handler):
    """Sends Python logging records to Erlang as ``{log, Level, Logger, Msg}``.

    Records from threads other than the loop's are handed to the loop with
    ``call_soon_threadsafe`` (the channel is only used from the loop thread).
    """

    def __init__(self, server: ServerLink, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.server = server
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            send_from_any_thread(self.server, log(level_name(record.levelno), record.name,
                                                  message))
        except Exception:
            self.handleError(record)


class OutputForwarder:
    """Forwards captured fd 1/2 lines to Erlang as ``{output, Stream, Line}``.

    ``send`` queues one term for Erlang (the port server's ``send``). The
    capture's descriptor is a reader on ``loop``; lines wait in Rust while
    the loop is busy (at most 10000; beyond that the oldest are dropped and
    a warning says how many).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[Any], None],
                 capture: Any = None) -> None:
        self.loop = loop
        self.send = send
        self.capture = capture if capture is not None else _pyport.OutputCapture([1, 2])
        self._fd = self.capture.fileno()
        self._watching = False

    def start(self) -> None:
        if not self._watching:
            self.loop.add_reader(self._fd, self.forward)
            self._watching = True

    def stop(self) -> None:
        """Stop watching and forward what is left."""
        if self._watching:
            self._watching = False
            if not self.loop.is_closed():
                self.loop.remove_reader(self._fd)
        self.forward()

    def forward(self) -> None:
        lines, dropped = self.capture.drain()
        send = self.send
        for fd, line in lines:
            send(output(fd, line))
        if dropped:
            send(log("warning", "pyport",
                     f"{dropped} line(s) of Python output were dropped: the loop was "
                     f"too busy to forward them"))
