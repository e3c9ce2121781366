"""Object handles' messages (docs/handles.md): ``{obj_release, [N]}`` drops
table entries Erlang let go of; the setup map names the table's loop,
incarnation and bound."""

from __future__ import annotations

from typing import Any

from .._handles import HandleTable
from .._wire import OBJ_RELEASE, SETUP_HANDLE_INCARNATION, SETUP_HANDLE_MAX, SETUP_LOOP
from .core import ServerCore

__all__ = ["serve", "setup"]


def serve(core: ServerCore, handles: HandleTable) -> None:
    """Route ``obj_release`` to ``handles``."""
    core.register(OBJ_RELEASE, 2, handles.release)


def setup(handles: HandleTable, info: Any) -> None:
    """The handle part of ``{setup, Info}``."""
    if isinstance(info, dict):
        handles.setup(info.get(SETUP_LOOP), info.get(SETUP_HANDLE_INCARNATION),
                      info.get(SETUP_HANDLE_MAX))
