"""Port mode's entry point: ``pyport port [options]`` runs :func:`main`.

It parses the options the Erlang worker passes, prepares the interpreter
(``sys.executable``, the port's atoms, the atom bound, logging, output
capture, ``python_path``/venv/preloads) and serves with a
:class:`~erlang._server.PortServer` until Erlang stops the port.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from . import _env
from ._compat import install_nested_run, predefine_erlang
from ._api import new_event_loop
from ._logging import ChannelLogHandler, OutputForwarder, python_level
from ._native import _pyport
from ._ops import ChannelStream
from ._server import PortServer
from ._types import Atom
from ._wire import PORT_ATOMS, bad_venv

__all__ = ["DEFAULT_MAX_PACKET", "main"]

DEFAULT_MAX_PACKET = 64 << 20


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = list(argv)
    if args and args[0] == "port":  # tolerate the sub-command word itself
        args = args[1:]
    parser = argparse.ArgumentParser(prog="pyport port",
                                     description="pyport in port mode (fds 3/4)")
    parser.add_argument("--max-packet", type=int, default=DEFAULT_MAX_PACKET,
                        metavar="BYTES", help="largest packet accepted (default 64 MiB)")
    parser.add_argument("--max-output-packet", type=int, default=None, metavar="BYTES",
                        help="largest packet Erlang accepts from the port; a larger "
                             "message raises OverflowError for its sender (default: none)")
    parser.add_argument("--path", action="append", default=[], metavar="DIR",
                        help="prepend DIR to sys.path (repeatable, order kept)")
    parser.add_argument("--venv", metavar="DIR",
                        help="make the virtualenv DIR's site-packages importable")
    parser.add_argument("--preload", action="append", default=[], metavar="MODULE",
                        help="import MODULE before reporting ready (repeatable)")
    parser.add_argument("--max-atoms", type=int, metavar="N",
                        help="distinct atoms Python may create (default 10000)")
    parser.add_argument("--none-atom", choices=("none", "nil", "undefined"),
                        help="the atom Python's None becomes (default none)")
    parser.add_argument("--log-level", metavar="OTP_LEVEL",
                        help="root logger level, as an OTP level (debug, info, "
                             "notice, warning, error, ...)")
    parser.add_argument("--capture-output", action="store_true",
                        help="send what is written to fds 1/2 to Erlang, line by line")
    parser.add_argument("--channel-fds", type=_fd_pair, default=(3, 4), metavar="IN,OUT",
                        help="the packet channel's descriptors (the executable moves "
                             "them off fds 3/4 and passes this; default 3,4)")
    return parser.parse_args(args)


def _fd_pair(text: str) -> tuple[int, int]:
    fd_in, sep, fd_out = text.partition(",")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected IN,OUT, not {text!r}")
    return int(fd_in), int(fd_out)


def _fix_sys_executable() -> None:
    """Point ``sys.executable`` at this executable (it runs as ``python3``).

    An embedded interpreter guesses ``sys.executable`` from ``PATH``; child
    Python processes (``asyncio.create_subprocess_exec(sys.executable, ...)``,
    ``multiprocessing``) must get pyport itself, with ``_pyport`` built in.
    """
    try:
        exe = os.readlink("/proc/self/exe")
    except OSError:  # pragma: no cover - not Linux
        return
    try:
        same = bool(sys.executable) and os.path.samefile(sys.executable, exe)
    except OSError:
        same = False
    if not same:
        sys.executable = exe
        sys._base_executable = exe  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the port: ``argv`` are the options after ``pyport port``."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    _fix_sys_executable()
    # Importing _wire made the port's atoms; this keeps them made should
    # that ever become lazy, before the bound below applies.
    for name in PORT_ATOMS:
        Atom(name)
    if args.max_atoms is not None:
        _pyport.set_max_atoms(max(args.max_atoms, 0))
    if args.none_atom is not None:
        _pyport.set_none_atom(args.none_atom)
    install_nested_run()
    predefine_erlang()
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    fd_in, fd_out = args.channel_fds
    channel = _pyport.Channel(fd_in, fd_out, args.max_packet, args.max_output_packet)
    # The channel works on duplicates; a forked child closes the originals.
    server = PortServer(loop, channel, child_closes=(fd_in, fd_out))
    forwarder = OutputForwarder(loop, server.send) if args.capture_output else None
    streams = (sys.stdout, sys.stderr)
    if forwarder is not None:
        forwarder.start()
        # print() and log records in one queue, so in order (erlang._ops).
        sys.stdout = ChannelStream(server, 1)
        sys.stderr = ChannelStream(server, 2)
    handler = ChannelLogHandler(server)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        try:
            if args.log_level is not None:
                root.setLevel(python_level(args.log_level))
            if args.venv:
                try:
                    _env.activate_venv(args.venv)
                except ValueError as exc:
                    raise _env.StartError(bad_venv(args.venv, str(exc)),
                                          f"venv: {exc}") from exc
            _env.add_python_path(args.path)
            _env.preload(args.preload)
        except (_env.StartError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, _env.StartError) else str(exc)
            print(f"pyport: cannot start: {exc}", file=sys.stderr, flush=True)
            if forwarder is not None:
                forwarder.stop()
            server.fail_start(reason)
            return 1
        return server.serve_forever()
    finally:
        if forwarder is not None:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            sys.stdout, sys.stderr = streams
            # The last lines (written while shutting down) go out too.
            forwarder.stop()
            server.drain(1.0)
        root.removeHandler(handler)
        asyncio.set_event_loop(None)
