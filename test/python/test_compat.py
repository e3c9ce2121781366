"""erlang._compat without a port: schedule_inline's markers, the module
attribute hook, erlang.run/asyncio.run outside port mode, reload_module,
and the per-reply none_atom of the channel's encoder."""

from __future__ import annotations

import asyncio
import sys
import types

import pytest

import _pyport
import erlang
from erlang import _compat


def _install(name: str, **attrs: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def test_schedule_inline_follows_steps_until_a_value():
    calls: list[int] = []

    def step(n: int, acc: int = 0) -> object:
        calls.append(n)
        if n == 0:
            return acc
        return erlang.schedule_inline("compat_steps", "step", [n - 1], {"acc": acc + n})

    _install("compat_steps", step=step)
    try:
        marker = step(4)
        assert isinstance(marker, erlang.ScheduleMarker)
        assert _compat.follow_inline(marker, None) == 10
        assert calls == [4, 3, 2, 1, 0]
    finally:
        del sys.modules["compat_steps"]


def test_follow_inline_leaves_other_values_and_markers_alone():
    other = erlang.schedule_py("math", "sqrt", [4.0])
    assert _compat.follow_inline(other, None) is other
    assert _compat.follow_inline(5, None) == 5


def test_follow_inline_with_a_deadline_interrupts_a_runaway_step():
    def spin() -> None:
        while True:
            pass

    _install("compat_spin", spin=spin)
    try:
        with pytest.raises(_pyport.TaskDeadline):
            _compat.follow_inline(erlang.schedule_inline("compat_spin", "spin"), 0.05)
    finally:
        del sys.modules["compat_spin"]


def test_schedule_inline_checks_its_arguments():
    with pytest.raises(TypeError):
        erlang.schedule_inline(b"mod", "f")  # type: ignore[arg-type]
    marker = erlang.schedule_inline("compat_missing_module", "f")
    with pytest.raises(ModuleNotFoundError):
        _compat.follow_inline(marker, None)


def test_attributes_need_a_port():
    # Outside port mode nothing is registered: plain AttributeError, so
    # hasattr and introspection behave.
    assert not hasattr(erlang, "my_callback")
    with pytest.raises(AttributeError):
        erlang.__getattr__("my_callback")
    with pytest.raises(ImportError):
        exec("from erlang import my_callback", {})
    assert not hasattr(erlang, "_private")


def test_erlang_function_is_a_named_call():
    f = _compat.ErlangFunction("add")
    assert f == _compat.ErlangFunction("add")
    assert hash(f) == hash(_compat.ErlangFunction("add"))
    assert "add" in repr(f)
    with pytest.raises(erlang.NotConnectedError):
        f(1, 2)


def test_run_inside_a_running_loop_outside_a_port_still_refuses():
    async def inner() -> int:
        return 1

    async def outer() -> None:
        coro = inner()
        with pytest.raises(RuntimeError):
            erlang.run(coro)
        coro.close()

    erlang.run(outer())
    assert not _compat.runs_nested()


def test_nested_run_outside_a_port_closes_the_coroutine():
    async def inner() -> int:
        return 1

    coro = inner()
    with pytest.raises(RuntimeError):
        _compat.nested_run(coro)
    assert coro.cr_frame is None  # closed: no "never awaited" warning


def test_install_nested_run_keeps_asyncio_run_working_outside_the_port():
    _compat.install_nested_run()

    async def main() -> int:
        await asyncio.sleep(0)
        return 7

    assert asyncio.run(main()) == 7
    assert getattr(asyncio.run, "__wrapped__", None) is not None


def test_reload_module_reloads_only_what_is_loaded(tmp_path, monkeypatch):
    source = tmp_path / "compat_reload_me.py"
    source.write_text("VERSION = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _compat.reload_module("compat_reload_me") is False
    import compat_reload_me  # type: ignore[import-not-found]

    try:
        assert compat_reload_me.VERSION == 1
        source.write_text("VERSION = 200\n")
        assert _compat.reload_module("compat_reload_me") is True
        assert compat_reload_me.VERSION == 200
    finally:
        del sys.modules["compat_reload_me"]


def test_none_atom_of_one_reply(tmp_path):
    import os

    r, w = os.pipe()
    r2, w2 = os.pipe()
    channel = _pyport.Channel(r2, w)
    try:
        channel.send_result(1, [None], "nil")
        channel.send_result(2, [None])
        with pytest.raises(ValueError):
            channel.send_result(3, None, "null")
        channel.flush()
        data = os.read(r, 4096)
        assert b"\x77\x03nil" in data
        assert data.count(b"nil") == 1
        assert b"\x77\x04none" in data
    finally:
        channel.close()
        for fd in (r, w, r2, w2):
            try:
                os.close(fd)
            except OSError:
                pass


def test_set_none_atom_checks_the_name():
    with pytest.raises(ValueError):
        _pyport.set_none_atom("null")
    _pyport.set_none_atom("nil")
    try:
        assert _pyport.decode(_pyport.encode(None)) is None
        assert _pyport.encode(None).endswith(b"nil")
    finally:
        _pyport.set_none_atom("none")
    assert _pyport.encode(None).endswith(b"none")


# -- issue 25: contexts, predefined erlang, stream_eval, gc -------------------


def test_context_namespace_keeps_definitions_and_predefines_erlang():
    from erlang import _contexts

    ns = _contexts.Namespace()
    _contexts.exec_in(ns, "counter = 1\ndef bump(by=1):\n    global counter\n    counter += by\n    return counter\n")
    assert _contexts.call(ns, "__main__", "bump", [], {"by": 2}) == 3
    assert _contexts.eval_in(ns, "counter + x", {"x": 4}) == 7
    assert "x" not in ns.globals
    assert _contexts.eval_in(ns, "erlang", {}) is erlang
    _contexts.exec_in(ns, "import json as j")
    assert _contexts.call(ns, "j", "dumps", [[1]], {}) == "[1]"
    assert _contexts.call(ns, "math", "sqrt", [16.0], {}) == 4.0
    with pytest.raises(NameError, match="not defined in this context"):
        _contexts.call(ns, "__main__", "nope", [], {})
    with pytest.raises(TypeError, match="not a context"):
        _contexts.eval_in({}, "1", {})


def test_context_limit_counts_live_namespaces(monkeypatch: pytest.MonkeyPatch):
    from erlang import _contexts

    monkeypatch.setattr(_contexts, "MAX_CONTEXTS", _contexts.live_count() + 2)
    kept = [_contexts.new(), _contexts.new()]
    with pytest.raises(_contexts.ContextLimitError, match="already holds"):
        _contexts.new()
    kept.pop()
    import gc

    gc.collect()
    assert isinstance(_contexts.new(), erlang.Handle)


def test_predefine_erlang_binds_it_in_main_without_replacing():
    main = sys.modules["__main__"]
    saved = main.__dict__.pop("erlang", None)
    try:
        _compat.predefine_erlang()
        assert main.__dict__["erlang"] is erlang
        main.__dict__["erlang"] = "mine"
        _compat.predefine_erlang()
        assert main.__dict__["erlang"] == "mine"
    finally:
        main.__dict__.pop("erlang", None)
        if saved is not None:
            main.__dict__["erlang"] = saved


def test_eval_iterable_gc_and_memory_stats():
    assert list(_compat.eval_iterable("(c * 2 for c in w)", {"w": "ab"})) == ["aa", "bb"]
    assert _compat.collect_garbage(0) >= 0
    with pytest.raises(ValueError, match="generation must be 0, 1 or 2"):
        _compat.collect_garbage(3)
    stats = _compat.memory_stats()
    assert set(stats) == {"gc_stats", "gc_count", "gc_threshold"}


def test_state_error_messages_name_the_limit():
    from erlang import _state

    assert "maximum of 100000 keys" in _state._describe(("state_full", 100000))
    assert "over the limit of 1048576 bytes" in _state._describe(
        ("state_value_too_large", 2000000, 1048576))
