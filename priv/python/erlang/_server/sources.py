"""Source text from Erlang: ``{exec | eval, Id, Code, Opts}`` runs in the
loop's ``__main__`` namespace (py_event_loop:exec/eval, docs/porting.md for
eval's ``locals``). Like a plain task, it runs under the watchdog when its
options carry ``deadline_ms``: code still running then gets
``TaskDeadline`` raised in it and the caller ``{error, timeout}``, and a
blocking ``erlang.call`` it makes gives up at that deadline.
"""

from __future__ import annotations

import asyncio
import sys
from types import ModuleType
from typing import Any

from .._deadline import TaskDeadline, call_with_deadline
from .._interop import current_caller
from .._types import Pid
from .._wire import (
    CANCELLED_REASON,
    EXEC,
    OPT_CALLER,
    OPT_LOCALS,
    OPT_NONE_ATOM,
    REASONS,
    TIMEOUT_REASON,
    python_error,
)
from .core import ServerCore
from .replies import Replies
from .tasks import OptionError, options

__all__ = ["Sources"]


def _main_namespace() -> dict[str, Any]:
    main = sys.modules.get("__main__")
    if main is None:  # pragma: no cover - the interpreter always has one
        main = ModuleType("__main__")
        sys.modules["__main__"] = main
    return main.__dict__


def _locals(bindings: Any) -> dict[str, Any]:
    """The local namespace of an eval with bindings: names as str."""
    if bindings is None:
        return {}
    if not isinstance(bindings, dict):
        raise TypeError(f"eval locals must be a map, not {type(bindings).__name__}")
    out: dict[str, Any] = {}
    for key, value in bindings.items():
        if not isinstance(key, str):
            raise TypeError(f"eval locals: names must be atoms or binaries, not {key!r}")
        out[key] = value
    return out


class Sources:
    """exec and eval of one port server."""

    def __init__(self, core: ServerCore, replies: Replies) -> None:
        self._core = core
        self._replies = replies

    def run(self, kind: str, id: Any, text: Any, opts: Any = None) -> None:
        """``{exec | eval, Id, Code}`` or ``{exec | eval, Id, Code, Opts}``."""
        replies = self._replies
        try:
            _, deadline = options(opts) if isinstance(opts, dict) else (True, None)
        except OptionError as exc:
            replies.error(id, python_error(TypeError(str(exc)), with_traceback=False))
            return
        caller = opts.get(OPT_CALLER) if isinstance(opts, dict) else None
        token = current_caller.set(caller if isinstance(caller, Pid) else None)
        loop = self._core.loop
        bridge = self._core.bridge
        frame = bridge.enter_frame(id, None if deadline is None else loop.time() + deadline)
        none_atom: str | None = None
        try:
            if not isinstance(text, str):
                raise TypeError(f"{kind} source must be a string, not {type(text).__name__}")
            code = compile(text, f"<erlang {kind}>", kind)
            namespaces: tuple[Any, ...] = (code, _main_namespace())
            if isinstance(opts, dict) and (OPT_LOCALS in opts or OPT_NONE_ATOM in opts):
                # py:eval/2,3 and eval/3's `locals` (docs/porting.md).
                none_atom = opts.get(OPT_NONE_ATOM)
                if not isinstance(none_atom, str):
                    none_atom = None
                namespaces += (_locals(opts.get(OPT_LOCALS)),)
            if deadline is None:
                value = eval(*namespaces)
            else:
                value = call_with_deadline(eval, namespaces, {}, deadline)
        except asyncio.CancelledError:
            # Cancelled (or timed out) while waiting in a blocking Erlang call.
            replies.error(id, REASONS[frame.reason or CANCELLED_REASON])
            return
        except TaskDeadline:
            # Still running at its deadline: interrupted by the watchdog.
            replies.error(id, REASONS[TIMEOUT_REASON])
            return
        except BaseException as exc:  # as for tasks: the caller's error
            replies.fail(id, True, kind, exc)
            return
        finally:
            bridge.leave_frame(frame)
            current_caller.reset(token)
        replies.ok(id, None if kind == EXEC else value, None, none_atom)
