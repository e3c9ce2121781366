"""Actors' messages (docs/actors.md): ``actor_start`` and ``actor_msg`` go to
the server's :class:`~erlang._actor.Actors`; an ``actor_msg`` of four
elements carries, instead of the message, why it has no Python form."""

from __future__ import annotations

from typing import Any

from .._actor import Actors
from .._wire import ACTOR_MSG, ACTOR_START
from .core import ServerCore

__all__ = ["serve"]


def serve(core: ServerCore, actors: Actors) -> None:
    core.register(ACTOR_START, 7, actors.start)
    core.register(ACTOR_MSG, 3, actors.deliver)

    def dropped(id: Any, _message: Any, reason: Any) -> None:
        actors.drop(id, str(reason))

    core.register(ACTOR_MSG, 4, dropped)
