"""Where Python finds code: ``python_path`` entries, a virtualenv, preloads.

The port applies these before it tells Erlang it is ready; a problem makes
the port refuse to start (``{start_failed, Reason}``, reasons in
docs/protocol.md), which the worker reports from its ``start_link``
(``{error, {port_start_failed, Reason}}``).
"""

from __future__ import annotations

import importlib
import os
import site
import sys
from collections.abc import Sequence
from typing import Any

from ._wire import bad_python_path, preload_failed

__all__ = ["StartError", "activate_venv", "add_python_path", "preload",
           "venv_site_packages"]


class StartError(Exception):
    """The port cannot start; ``reason`` is the Erlang term to report."""

    def __init__(self, reason: Any, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def add_python_path(paths: Sequence[str]) -> list[str]:
    """Put ``paths`` first on ``sys.path``, in order; each must be a directory."""
    absolute = []
    for path in paths:
        if not os.path.isdir(path):
            raise StartError(bad_python_path(path),
                             f"python_path entry {path!r} is not a directory")
        absolute.append(os.path.abspath(path))
    sys.path[0:0] = absolute
    return absolute


def venv_site_packages(venv: str) -> str:
    """The site-packages directory of virtualenv ``venv`` for this Python.

    ``ValueError`` saying why when ``venv`` is not a directory or was not
    made for this Python's ``X.Y`` (it has no ``lib/pythonX.Y/site-packages``).
    """
    if not os.path.isdir(venv):
        raise ValueError(f"{venv!r} is not a directory")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = os.path.join(os.path.abspath(venv), "lib", version, "site-packages")
    if not os.path.isdir(site_packages):
        raise ValueError(f"{venv!r} has no lib/{version}/site-packages: not a "
                         f"virtualenv made for Python "
                         f"{sys.version_info.major}.{sys.version_info.minor}")
    return site_packages


def activate_venv(venv: str) -> str:
    """Make the packages of virtualenv ``venv`` importable; returns its
    site-packages directory.

    The directory goes first on ``sys.path`` (its ``.pth`` files are
    processed, as Python's ``site`` does for a virtualenv) and
    ``VIRTUAL_ENV`` is set for child processes. The interpreter itself stays
    pyport's: the venv must be made for the same Python ``X.Y``.
    """
    site_packages = venv_site_packages(venv)
    before = list(sys.path)
    site.addsitedir(site_packages)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + [p for p in sys.path if p not in added]
    os.environ["VIRTUAL_ENV"] = os.path.abspath(venv)
    importlib.invalidate_caches()
    return site_packages


def preload(modules: Sequence[str]) -> None:
    """Import ``modules`` in order (so a broken one fails the start)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # SystemExit in a module is a failure too
            raise StartError(
                preload_failed(name, exc),
                f"preloading {name!r} failed: {type(exc).__name__}: {exc}") from exc
