"""The wire module: every atom the port can emit is made before the atom bound."""

from __future__ import annotations

from typing import Any

import erlang
from erlang import _logging, _wire

PORT_ATOMS = set(_wire.PORT_ATOMS)


def atoms_in(term: Any) -> set[str]:
    """The names of all atoms in ``term``, however deep."""
    if isinstance(term, erlang.Atom):
        return {term.name}
    if isinstance(term, dict):
        return set().union(*(atoms_in(k) | atoms_in(v) for k, v in term.items()))
    if isinstance(term, (tuple, list)):
        return set().union(*(atoms_in(t) for t in term))
    return set()


def every_envelope() -> list[Any]:
    exc = ValueError("boom")
    return [
        *(_wire.ready(mode.value, "3.11", 1) for mode in erlang.ExecutionMode),
        _wire.start_failed(_wire.bad_python_path("/nowhere")),
        _wire.start_failed(_wire.bad_venv("/nowhere", "why")),
        _wire.start_failed(_wire.preload_failed("mod", exc)),
        _wire.result_error(1, _wire.python_error(exc)),
        _wire.result_error(1, _wire.python_error(exc, with_traceback=False)),
        *(_wire.result_error(1, reason) for reason in _wire.REASONS.values()),
        *(_wire.log(level, "logger", "text") for level in _wire.LEVELS),
        *(_wire.output(fd, b"line") for fd in _wire.STREAMS),
        *(_wire.request(tag, 1, ("x",)) for tag in (_wire.CALL, _wire.SEND, _wire.WHEREIS)),
        _wire.unknown_message("junk"),
        _wire.stream_data(1, [1, 2]),
        _wire.stream_end(1),
        *(_wire.stream_end(1, reason) for reason in _wire.STREAM_REASONS.values()),
    ]


def test_every_atom_of_every_envelope_is_made_up_front():
    emitted = set().union(*(atoms_in(e) for e in every_envelope()))
    assert emitted <= PORT_ATOMS, emitted - PORT_ATOMS


def test_every_atom_the_module_names_is_made_up_front():
    named = set()
    for value in vars(_wire).values():
        named |= atoms_in(value)
        if isinstance(value, dict):
            named |= atoms_in(list(value.values()))
    assert named <= PORT_ATOMS, named - PORT_ATOMS
    assert len(_wire.PORT_ATOMS) == len(PORT_ATOMS)  # no duplicates


def test_every_mode_and_log_level_the_port_reports_has_its_atom():
    assert {mode.value for mode in erlang.ExecutionMode} <= set(_wire.MODES)
    levels = {_logging.level_name(n) for n in range(0, 60)}
    assert levels <= set(_wire.LEVELS)
    assert set(_wire.REASONS) == {_wire.TIMEOUT_REASON, _wire.CANCELLED_REASON}


def test_call_reply_payloads_are_split():
    # atoms from Erlang decode to str
    assert _wire.split_reply(("ok", 1)) == ("ok", 1)
    assert _wire.split_reply(("error", "noproc")) == ("error", "noproc")
    assert _wire.split_reply(("other", 1)) is None
    assert _wire.split_reply(("ok", 1, 2)) is None
    assert _wire.split_reply("ok") is None


# -- modules Erlang calls by name ------------------------------------------------

import glob  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402

ERL_SRC = os.path.join(os.path.dirname(__file__), "..", "..", "erl_src")
# 'erlang._x' (an atom), "erlang._x" (a string: pyport run -m), <<"erlang._x">>
_NAMED = re.compile(r"""['"]erlang\.(_?[a-z][a-z0-9_]*)['"]""")


def modules_named_in_erl_src() -> set[str]:
    found: set[str] = set()
    for path in glob.glob(os.path.join(ERL_SRC, "*.erl")):
        with open(path, encoding="utf-8") as f:
            found.update("erlang." + m for m in _NAMED.findall(f.read()))
    return found


def test_erlang_called_modules_match_erl_src() -> None:
    named = modules_named_in_erl_src()
    assert named, "the scan found no module: the pattern or the path is wrong"
    assert set(_wire.ERLANG_CALLED_MODULES) == named
    for name in _wire.ERLANG_CALLED_MODULES:
        assert importlib.util.find_spec(name) is not None, name


def test_erlang_called_modules_are_in_protocol_md() -> None:
    doc = open(os.path.join(ERL_SRC, "..", "docs", "protocol.md"), encoding="utf-8").read()
    section = doc.split("## Python modules Erlang calls", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(erlang\.[a-z_]+)` \|", section, re.M))
    assert listed == set(_wire.ERLANG_CALLED_MODULES)


def test_handles_functions_py_obj_calls_exist() -> None:
    """py_obj runs ?PY:Func for these; renaming one breaks handles."""
    with open(os.path.join(ERL_SRC, "py_obj.erl"), encoding="utf-8") as f:
        called = set(re.findall(r"task\(Obj, ([a-z_]+), ", f.read()))
    assert called == {"call", "get", "put", "value", "info"}
    module = importlib.import_module("erlang._handles")
    assert all(callable(getattr(module, name, None)) for name in called)
