"""Per-process namespaces for ``py:context/0,1`` (docs/porting.md).

A context is a :class:`Namespace` held by Erlang as an object handle
(docs/handles.md): the handle's owner is the Erlang process, so the
namespace goes when that process exits, and a port restart ends it
(Erlang reports ``{error, context_lost}``). Each function here runs as an
ordinary task, so a call in a context has the task's deadline like any.
"""

from __future__ import annotations

import builtins
import importlib
import sys
import weakref
from types import ModuleType
from typing import Any

from . import _handles

__all__ = ["MAX_CONTEXTS", "ContextLimitError", "Namespace", "call", "eval_in",
           "exec_in", "live_count", "new"]

# Namespaces alive at once in one port; each holds whatever its code
# defined, so an unbounded number would be an unbounded memory.
MAX_CONTEXTS = 1024

_live: weakref.WeakSet[Namespace] = weakref.WeakSet()


class ContextLimitError(RuntimeError):
    """This port already holds :data:`MAX_CONTEXTS` contexts."""


class Namespace:
    """The globals of one context: ``__main__``-like, with ``erlang``
    predefined as in ``py:eval``/``py:exec``."""

    __slots__ = ("globals", "__weakref__")

    def __init__(self) -> None:
        import erlang

        self.globals: dict[str, Any] = {"__name__": "__main__",
                                        "__builtins__": builtins,
                                        "erlang": erlang}

    def __repr__(self) -> str:
        return f"<erlang context of {len(self.globals)} names>"


def new() -> _handles.Handle:
    """A fresh namespace, handed to Erlang as a handle."""
    if len(_live) >= MAX_CONTEXTS:
        raise ContextLimitError(
            f"this loop already holds {MAX_CONTEXTS} contexts; contexts are "
            "released when their owner process exits")
    namespace = Namespace()
    _live.add(namespace)
    return _handles.handle(namespace)


def _check(namespace: Any) -> Namespace:
    if not isinstance(namespace, Namespace):
        raise TypeError(f"not a context: {type(namespace).__name__}")
    return namespace


def _target(namespace: Namespace, module: str, func: str) -> Any:
    """``module.func``: ``'__main__'`` is the context's own namespace, a
    name the context bound to a module (``import json as j``) is that
    module, anything else is imported."""
    if module == "__main__":
        try:
            return namespace.globals[func]
        except KeyError:
            raise NameError(f"name {func!r} is not defined in this context") from None
    bound = namespace.globals.get(module)
    target: ModuleType | Any = bound if isinstance(bound, ModuleType) else (
        sys.modules.get(module) or importlib.import_module(module))
    return getattr(target, func)


def call(namespace: Any, module: str, func: str, args: list[Any],
         kwargs: dict[str, Any]) -> Any:
    """``module.func(*args, **kwargs)`` seen from the context."""
    ns = _check(namespace)
    return _target(ns, module, func)(*args, **{str(k): v for k, v in kwargs.items()})


def eval_in(namespace: Any, code: str, bindings: dict[str, Any]) -> Any:
    """The value of expression ``code`` in the context, with ``bindings``
    as locals that do not stay."""
    ns = _check(namespace)
    compiled = compile(code, "<erlang context eval>", "eval")
    return eval(compiled, ns.globals, {str(k): v for k, v in bindings.items()})


def exec_in(namespace: Any, code: str) -> None:
    """Statements ``code`` run in the context; what they bind stays."""
    ns = _check(namespace)
    exec(compile(code, "<erlang context exec>", "exec"), ns.globals)


def live_count() -> int:
    """Contexts alive in this port."""
    return len(_live)

