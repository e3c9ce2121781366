"""Import of the native module ``_pyport`` with a clear error outside pyport.

``_pyport`` is compiled into the ``priv/pyport`` executable; it cannot be
imported by a stock ``python3``. Run Python code that needs the ``erlang``
package with ``priv/pyport run ...`` (same arguments as ``python3``).
"""

from __future__ import annotations

try:
    import _pyport
except ImportError as exc:  # pragma: no cover - only outside the executable
    raise ImportError(
        "the 'erlang' package needs the native module '_pyport', which only "
        "exists inside pyport's executable: run this code with "
        "'priv/pyport run ...' (it takes the same arguments as python3)"
    ) from exc

__all__ = ["_pyport"]
