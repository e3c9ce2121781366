"""Erlang term types that have no native Python counterpart.

``Atom``, ``Pid`` and ``Ref`` are implemented in Rust (``_pyport``) so that
they convert back to the very same Erlang term. ``Pid`` and ``Ref`` are only
made by decoding terms that came from Erlang; ``Atom(name)`` can be built in
Python (``ValueError`` above 255 characters).
"""

from __future__ import annotations

from ._native import _pyport

Atom = _pyport.Atom
Pid = _pyport.Pid
Ref = _pyport.Ref

__all__ = ["Atom", "Pid", "Ref"]
