"""Object handles: Python objects that stay in the port, named by Erlang.

The port keeps one :class:`HandleTable` (number -> object). Erlang holds a
handle as ``#py_obj{loop, incarnation, id}`` (``{py_obj, Index, Ref, N}``),
a term the Erlang side builds itself from the number Python reports; the
port only reports numbers of its own live table (docs/handles.md).

- A task whose options say ``result => handle`` keeps its result here and
  replies ``{result, Id, {handles, {'$pyport_handle', N}, [N]}}``;
  ``result => auto`` converts the result, turning only the parts that have
  no term form into handles.
- :func:`handle` wraps an object so that, returned to Erlang (anywhere in
  a result), it travels as a handle too.
- A task whose options say ``handle_args => true`` gets each
  ``{py_obj, ...}`` of its arguments replaced by the object itself, after
  checking that it names this loop and this port's incarnation.
- ``obj_release`` packets drop table entries; the object lives on only if
  Python code still refers to it.

The fast path of plain tasks does not come here: a :class:`Handle` met by
the Rust encoder raises :class:`HandleInTerm` from its ``__erlang__`` hook,
and the server then replies through :func:`tagged`.
"""

from __future__ import annotations

import itertools
from typing import Any

from ._native import _pyport
from ._types import Atom, Ref
from ._wire import HANDLE_MARKER as MARKER

__all__ = ["Handle", "HandleInTerm", "HandleLimitError", "HandleTable",
           "StaleHandleError", "handle"]

#: the tag of an Erlang handle as a task argument (``#py_obj{}``)
OBJ_TAG = "py_obj"
#: what :func:`info` truncates a repr to
REPR_MAX = 200


class HandleLimitError(RuntimeError):
    """The loop holds ``max_handles`` live handles already."""


class StaleHandleError(LookupError):
    """A handle of another port incarnation, another loop, or released."""


class HandleInTerm(Exception):
    """Raised by :meth:`Handle.__erlang__` on the encoder's fast path: the
    reply has handles and must be sent as ``{handles, Value, Ns}``."""


class Handle:
    """``erlang.handle(obj)``: ``obj`` goes to Erlang as a handle."""

    __slots__ = ("obj", "number")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.number: int | None = None

    def __erlang__(self) -> Any:
        raise HandleInTerm()

    def __repr__(self) -> str:
        return f"erlang.handle({type(self.obj).__qualname__})"


def handle(obj: Any) -> Handle:
    """Wrap ``obj`` so that a task result carries it to Erlang as a handle
    (owned by that task's caller) instead of converting it."""
    return obj if isinstance(obj, Handle) else Handle(obj)


class HandleTable:
    """The port's live handles, and who they may be resolved for."""

    def __init__(self, max_handles: int = 10000) -> None:
        self.max_handles = max_handles
        # An int, or (pool, int) for a named pool's loop (erl_src/py_pool.erl).
        self.loop: int | tuple[str, int] | None = None
        self.incarnation: Ref | None = None
        self._objects: dict[int, Any] = {}
        self._numbers = itertools.count(1)

    def __len__(self) -> int:
        return len(self._objects)

    def setup(self, loop: Any, incarnation: Any, max_handles: Any) -> None:
        """From the worker's ``setup`` map (``loop``, ``handle_incarnation``,
        ``handle_max``)."""
        if isinstance(loop, int):
            self.loop = loop
        elif (isinstance(loop, tuple) and len(loop) == 2 and isinstance(loop[0], str)
              and isinstance(loop[1], int)):
            self.loop = (loop[0], loop[1])
        if isinstance(incarnation, Ref):
            self.incarnation = incarnation
        if isinstance(max_handles, int) and not isinstance(max_handles, bool) \
                and max_handles >= 0:
            self.max_handles = max_handles

    def store(self, obj: Any) -> int:
        if len(self._objects) >= self.max_handles:
            raise HandleLimitError(f"the loop holds {self.max_handles} live handles "
                                   f"(max_handles)")
        number = next(self._numbers)
        self._objects[number] = obj
        return number

    def release(self, numbers: Any) -> None:
        if isinstance(numbers, list):
            for number in numbers:
                if isinstance(number, int):
                    self._objects.pop(number, None)

    def lookup(self, term: tuple[Any, ...]) -> Any:
        """The object a ``{py_obj, Loop, Incarnation, N}`` names here."""
        _, loop, incarnation, number = term
        if loop != self.loop or incarnation != self.incarnation:
            raise StaleHandleError(f"handle of loop {loop} (another port or loop)")
        try:
            return self._objects[number]
        except (KeyError, TypeError):
            raise StaleHandleError(f"handle {number} was released") from None

    # -- arguments ---------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """``value`` with every ``{py_obj, ...}`` replaced by its object."""
        kind = type(value)
        if kind is tuple:
            if len(value) == 4 and value[0] == OBJ_TAG:
                return self.lookup(value)
            return tuple(self.resolve(v) for v in value)
        if kind is list:
            return [self.resolve(v) for v in value]
        if kind is dict:
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    # -- results -----------------------------------------------------------------

    def tagged(self, value: Any, mode: str | None) -> tuple[Any, list[int], list[int]]:
        """``(Value, Ns, Created)``: ``Value`` and ``Ns`` of a ``{handles,
        Value, Ns}`` reply, the whole value kept (``mode == "handle"``), or
        converted with each :class:`Handle` (and, in ``auto`` mode, each
        part without a term form) kept as a handle; ``Created`` the numbers
        stored for this reply alone (``Ns`` may also name live handles that
        other owners hold: a :class:`Handle` sent again). Raises
        :class:`HandleLimitError` or what the value's conversion raises;
        only what was created for it leaves the table then."""
        numbers: list[int] = []
        created: list[int] = []
        try:
            if mode == "handle":
                return self._marker(value, numbers, created), numbers, created
            return self._walk(value, mode == "auto", numbers, created), numbers, created
        except BaseException:
            self.release(created)
            raise

    def _marker(self, obj: Any, numbers: list[int], created: list[int]) -> tuple[Atom, int]:
        if isinstance(obj, Handle):
            if obj.number is None or obj.number not in self._objects:
                obj.number = self.store(obj.obj)
                created.append(obj.number)
            number = obj.number
        else:
            number = self.store(obj)
            created.append(number)
        numbers.append(number)
        return (MARKER, number)

    def _walk(self, value: Any, auto: bool, numbers: list[int], created: list[int]) -> Any:
        if isinstance(value, Handle):
            return self._marker(value, numbers, created)
        kind = type(value)
        if kind is list:
            return [self._walk(v, auto, numbers, created) for v in value]
        if kind is tuple:
            return tuple(self._walk(v, auto, numbers, created) for v in value)
        if kind is dict:
            return {k: self._walk(v, auto, numbers, created) for k, v in value.items()}
        if auto:
            try:
                _pyport.encode(value)
            except HandleInTerm:
                return self._walk(value.__erlang__(), auto, numbers, created)
            except TypeError:
                return self._marker(value, numbers, created)
        return value




# -- tasks on handles (py_obj) ---------------------------------------------------------

def call(obj: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """``obj.method(*args, **kwargs)`` (py_obj:call)."""
    return getattr(obj, method)(*args, **kwargs)


def get(obj: Any, name: str) -> Any:
    """``obj.name`` (py_obj:getattr)."""
    return getattr(obj, name)


def put(obj: Any, name: str, value: Any) -> None:
    """``obj.name = value`` (py_obj:setattr)."""
    setattr(obj, name, value)


def value(obj: Any) -> Any:
    """The object itself, converted now (py_obj:value)."""
    return obj


def info(obj: Any) -> dict[Atom, Any]:
    """``#{type, module, repr}`` of the object (py_obj:info); the repr is
    truncated to REPR_MAX characters."""
    kind = type(obj)
    try:
        text = repr(obj)
    except Exception as exc:  # task code's __repr__ may raise
        text = f"<{kind.__qualname__} object; repr raised {type(exc).__qualname__}>"
    if len(text) > REPR_MAX:
        text = text[:REPR_MAX] + "..."
    return {Atom("type"): kind.__qualname__, Atom("module"): kind.__module__,
            Atom("repr"): text}
