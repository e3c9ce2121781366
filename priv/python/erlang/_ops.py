"""Operations (docs/operations.md): which Python is loaded, and the port's
log level following the OTP logger's.

- :func:`interpreter_info` is added to ``{ready, Info}``: the libpython the
  loader actually mapped into this process and whether it is the one the
  executable was built against (``_pyport.BUILT_PYTHON_LIB_DIR``); the
  worker refuses a different one unless ``allow_other_python`` is set.
- :func:`set_log_level` handles ``{log_level, OtpLevel}``, which the worker
  sends when the OTP logger's primary level changes.
- :class:`ChannelStream` replaces ``sys.stdout``/``sys.stderr`` in port mode
  with output capture on: Python-level writes (``print``) are sent as
  ``{output, Stream, Line}`` by the thread that writes them, through the
  same queue as log records, so a task's printed lines and its log records
  reach Erlang in the order they were made. Writes to fds 1/2 that bypass
  ``sys.stdout`` (C code, subprocesses) still go through the fd capture.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from typing import Any

from ._link import ServerLink
from ._logging import python_level, send_from_any_thread
from ._native import _pyport
from ._wire import output

__all__ = ["ChannelStream", "interpreter_info", "loaded_libpython", "set_log_level"]

#: Longest line sent in one piece (as the fd capture cuts them).
MAX_LINE = 16 * 1024


def loaded_libpython(maps: str = "/proc/self/maps") -> str | None:
    """The path of the ``libpython*.so`` mapped into this process, or
    ``None`` (a static build, or no ``/proc``)."""
    try:
        with open(maps, encoding="utf-8", errors="replace") as f:
            for line in f:
                path = line.rstrip("\n").split(None, 5)[-1]
                if "/libpython" in path and ".so" in path:
                    return path
    except OSError:
        return None
    return None


def interpreter_info() -> dict[str, Any]:
    """``python_lib``, ``python_lib_built`` and ``python_lib_same`` (false
    when the loaded library is not in the directory built against)."""
    built_dir: str = _pyport.BUILT_PYTHON_LIB_DIR
    built_version: str = _pyport.BUILT_PYTHON_VERSION
    loaded = loaded_libpython()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if loaded is None or not built_dir:
        same = version == built_version
    else:
        same = (version == built_version and
                os.path.realpath(os.path.dirname(loaded)) == os.path.realpath(built_dir))
    return {
        "python_lib": loaded if loaded is not None else "",
        "python_lib_built": f"{built_dir} (Python {built_version})",
        "python_lib_same": same,
    }


def set_log_level(level: Any) -> str | None:
    """Set the root logger's level to OTP level ``level``; the error text
    for a level that is not one."""
    if not isinstance(level, str):
        return f"log_level: not an OTP level: {level!r}"
    try:
        logging.getLogger().setLevel(python_level(level))
    except ValueError as exc:
        return str(exc)
    return None


class ChannelStream(io.TextIOBase):
    """A text stream whose complete lines go to Erlang as
    ``{output, Stream, Line}`` (``fd`` 1 or 2 names the stream).

    Like :class:`~erlang._logging.ChannelLogHandler`, a line written on
    another thread is handed to the loop with ``call_soon_threadsafe``; an
    unfinished line waits (per thread) for its newline or a flush.
    """

    def __init__(self, server: ServerLink, fd: int, encoding: str = "utf-8") -> None:
        super().__init__()
        self._server = server
        self._fd = fd
        self._encoding = encoding
        self._partial = threading.local()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        buffered = getattr(self._partial, "text", "") + text
        *lines, rest = buffered.split("\n")
        for line in lines:
            self._send(line)
        while len(rest) >= MAX_LINE:
            self._send(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._partial.text = rest
        return len(text)

    def flush(self) -> None:
        rest = getattr(self._partial, "text", "")
        if rest:
            self._partial.text = ""
            self._send(rest)

    def _send(self, line: str) -> None:
        send_from_any_thread(self._server,
                             output(self._fd, line.encode(self._encoding, "backslashreplace")))
