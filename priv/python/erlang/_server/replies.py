"""How a task's end reaches Erlang: ``{result, Id, {ok, Value}}`` (built in
Rust on the fast path), ``{result, Id, {handles, Value, Ns}}`` when the
result holds object handles or the task asked for them (docs/handles.md),
or ``{result, Id, {error, Reason}}``."""

from __future__ import annotations

from typing import Any

from .._handles import HandleInTerm, HandleLimitError, HandleTable
from .._wire import HANDLE_LIMIT, python_error, result_error, result_handles
from .core import ServerCore

__all__ = ["Replies"]


class Replies:
    """Replies to Erlang's tasks, through ``core``'s channel."""

    def __init__(self, core: ServerCore, handles: HandleTable) -> None:
        self._core = core
        self._handles = handles

    def error(self, id: Any, reason: Any) -> None:
        self._core.send(result_error(id, reason))

    def ok(self, id: Any, value: Any, mode: str | None = None,
           none_atom: str | None = None) -> None:
        """``value`` as the result of task ``id``; ``mode`` is the task's
        ``result`` option (``handle`` | ``auto``, None for a term)."""
        channel = self._core.channel
        try:
            if none_atom is not None and mode is None:
                channel.send_result(id, value, none_atom)
                return
            if mode is None:
                channel.send_result(id, value)
                return
            if mode == "auto":
                try:
                    channel.send_result(id, value)
                    return
                except TypeError:
                    pass  # parts without a term form: kept as handles
            self._handles_reply(id, value, mode)
        except HandleInTerm:
            # erlang.handle(...) somewhere in the result (docs/handles.md).
            self._handles_reply(id, value, mode)
        except BaseException as exc:  # unconvertible (TypeError), too deep, or
            # whatever the result's own conversion hooks raise
            self.error(id, python_error(exc, with_traceback=False))

    def _handles_reply(self, id: Any, value: Any, mode: str | None) -> None:
        """``{result, Id, {handles, Value, Ns}}``: ``value`` (or its parts)
        kept in the handle table; Erlang builds the handle terms."""
        handles = self._handles
        try:
            tagged, numbers, created = handles.tagged(value, mode)
        except HandleLimitError:
            self.error(id, (HANDLE_LIMIT, handles.max_handles))
            return
        except BaseException as exc:  # a part's own conversion hook raised
            self.error(id, python_error(exc, with_traceback=False))
            return
        try:
            self._core.channel.send(result_handles(id, tagged, numbers))
        except BaseException as exc:  # the converted parts may still fail
            # Only what this reply stored: a handle sent again is another
            # owner's (docs/handles.md).
            handles.release(created)
            self.error(id, python_error(exc, with_traceback=False))

    def fail(self, id: Any, reply: bool, label: str, exc: BaseException) -> None:
        """Task ``id`` raised ``exc``: its error, or a log line when nobody
        waits for a reply."""
        error = python_error(exc)
        if reply:
            self.error(id, error)
        else:
            _, name, message, tb = error
            self._core.log("error", f"task {label} failed: {name}: {message}\n{tb}")
