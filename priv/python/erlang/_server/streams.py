"""Streams' messages (docs/streams.md): ``stream_start``, ``stream_credit``
and ``stream_cancel`` go to the server's :class:`~erlang._stream.Streams`."""

from __future__ import annotations

from .._stream import Streams
from .._wire import STREAM_CANCEL, STREAM_CREDIT, STREAM_START
from .core import ServerCore

__all__ = ["serve"]


def serve(core: ServerCore, streams: Streams) -> None:
    core.register(STREAM_START, 7, streams.start)
    core.register(STREAM_CREDIT, 3, streams.credit)
    core.register(STREAM_CANCEL, 2, streams.cancel)
