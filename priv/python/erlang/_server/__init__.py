"""Port mode's server, one module per job: ``core`` (the channel, the loop,
the tag -> handler table), ``replies`` (a task's end to Erlang), ``tasks``,
``sources`` (exec/eval), and the glue of ``streams``, ``actors`` and
``handles``; ``port`` puts them together as :class:`PortServer`."""

from __future__ import annotations

from .port import HIGH_WATER, LOW_WATER, PortServer

__all__ = ["HIGH_WATER", "LOW_WATER", "PortServer"]
