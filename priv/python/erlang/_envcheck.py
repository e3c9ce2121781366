"""``pyport run -m erlang._envcheck [--venv DIR] [--path DIR]... [--import M]...``

Checks the environment a loop would start in, in the interpreter the port
runs, and prints one line per check (``ok`` or ``PROBLEM``): the Python
found (version, the libpython the loader mapped, whether it is the one
built against), the venv (made for this Python ``X.Y``), each
``python_path`` directory, and each module (importable, after the venv and
paths are applied, as the port does). Exit status 1 when anything is
wrong. ``make check-env`` runs it for every loop of the configured
application (``erl_src/pyport_envcheck.erl``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import _env, _ops

__all__ = ["check", "main"]


def check(venv: str | None, paths: Sequence[str], modules: Sequence[str]) -> list[tuple[bool, str]]:
    """``(ok, text)`` per check, in order."""
    out: list[tuple[bool, str]] = []
    info = _ops.interpreter_info()
    out.append((True, f"Python {sys.version.split()[0]} ({sys.executable})"))
    out.append((bool(info["python_lib_same"]),
                f"libpython loaded: {info['python_lib'] or '(none found)'}; built against "
                f"{info['python_lib_built']}"))
    if venv:
        try:
            site_packages = _env.activate_venv(venv)
            out.append((True, f"venv {venv}: {site_packages}"))
        except ValueError as exc:
            out.append((False, f"venv: {exc}"))
    for path in paths:
        ok = os.path.isdir(path)
        out.append((ok, f"python_path {path}" + ("" if ok else ": not a directory")))
        if ok:
            sys.path.insert(0, os.path.abspath(path))
    importlib.invalidate_caches()
    for name in modules:
        try:
            module = importlib.import_module(name)
            out.append((True, f"import {name}: {getattr(module, '__file__', None) or 'built in'}"))
        except BaseException as exc:  # a module may raise anything, SystemExit included
            out.append((False, f"import {name}: {type(exc).__name__}: {exc}"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyport run -m erlang._envcheck")
    parser.add_argument("--venv")
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--import", dest="modules", action="append", default=[])
    args = parser.parse_args(argv)
    results = check(args.venv, args.path, args.modules)
    for ok, text in results:
        print(f"{'ok     ' if ok else 'PROBLEM'} {text}")
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
