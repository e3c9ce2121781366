"""erlang._env (python_path, venv, preload), erlang._logging (levels, output
forwarding) and the port options that use them, through the executable."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import textwrap

import pytest

import _pyport
import erlang
from erlang import _env, _logging
from porthelp import Atom, PortHarness, make_ref, task
from test_port_exe import EXE, PortProcess


# -- _env ------------------------------------------------------------------------


@pytest.fixture
def saved_path():
    before = list(sys.path)
    env = os.environ.get("VIRTUAL_ENV")
    try:
        yield
    finally:
        sys.path[:] = before
        if env is None:
            os.environ.pop("VIRTUAL_ENV", None)
        else:
            os.environ["VIRTUAL_ENV"] = env


def fake_venv(root, pth_target=None):
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = root / "lib" / version / "site-packages"
    site.mkdir(parents=True)
    (site / "venv_only_mod.py").write_text("VALUE = 'from the venv'\n")
    if pth_target is not None:
        (site / "extra.pth").write_text(str(pth_target) + "\n")
    (root / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    return site


def test_add_python_path_puts_dirs_first_in_order(tmp_path, saved_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _env.add_python_path([str(a), str(b)])
    assert sys.path[:2] == [str(a), str(b)]


def test_add_python_path_refuses_a_missing_dir(tmp_path, saved_path):
    with pytest.raises(_env.StartError) as info:
        _env.add_python_path([str(tmp_path), str(tmp_path / "missing")])
    assert info.value.reason == (Atom("bad_python_path"), str(tmp_path / "missing"))
    assert str(tmp_path) not in sys.path  # nothing half-applied


def test_activate_venv_puts_site_packages_first_with_pth_files(tmp_path, saved_path):
    extra = tmp_path / "pth_dir"
    extra.mkdir()
    site = fake_venv(tmp_path / "venv", pth_target=extra)
    assert erlang.activate_venv(str(tmp_path / "venv")) == str(site)
    assert sys.path[:2] == [str(site), str(extra)]
    assert os.environ["VIRTUAL_ENV"] == str(tmp_path / "venv")
    import venv_only_mod

    assert venv_only_mod.VALUE == "from the venv"
    del sys.modules["venv_only_mod"]


def test_venv_errors_say_why(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        _env.venv_site_packages(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="site-packages"):
        _env.venv_site_packages(str(tmp_path))


def test_preload_reports_the_failing_module(tmp_path, saved_path):
    (tmp_path / "bad_mod_for_preload.py").write_text("raise KeyError('k')\n")
    sys.path.insert(0, str(tmp_path))
    _env.preload(["json"])
    with pytest.raises(_env.StartError) as info:
        _env.preload(["json", "bad_mod_for_preload"])
    tag, name, (python, type_name, message, tb) = info.value.reason
    assert (tag, name, python, type_name, message) == (
        Atom("preload_failed"), "bad_mod_for_preload", Atom("python"), "KeyError", "'k'")
    assert "bad_mod_for_preload.py" in tb


# -- _logging ----------------------------------------------------------------------


def test_otp_levels_map_onto_python_levels():
    assert _logging.python_level("debug") == logging.DEBUG
    assert _logging.python_level("notice") == 25
    assert _logging.python_level("emergency") == logging.CRITICAL
    assert _logging.python_level("none") > logging.CRITICAL
    assert _logging.python_level("all") < logging.DEBUG
    with pytest.raises(ValueError, match="unknown OTP logger level"):
        _logging.python_level("loud")


def test_python_levels_map_onto_otp_levels():
    names = [_logging.level_name(n) for n in (5, 10, 20, 25, 30, 40, 50, 60)]
    assert names == ["debug", "debug", "info", "notice", "warning", "error",
                     "critical", "critical"]


class FakeCapture:
    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.lines: list[tuple[int, bytes]] = []
        self.dropped = 0

    def fileno(self) -> int:
        return self.r

    def push(self, *lines: tuple[int, bytes], dropped: int = 0) -> None:
        self.lines.extend(lines)
        self.dropped += dropped
        os.write(self.w, b"x")

    def drain(self):
        os.read(self.r, 1024)
        out, self.lines = self.lines, []
        dropped, self.dropped = self.dropped, 0
        return out, dropped

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


def test_output_forwarder_sends_each_line_with_its_stream():
    loop = erlang.new_event_loop()
    capture = FakeCapture()
    sent: list[object] = []
    forwarder = _logging.OutputForwarder(loop, sent.append, capture)
    try:
        forwarder.start()
        capture.push((1, b"out line"), (2, b"err line"), dropped=3)
        loop.run_until_complete(asyncio.sleep(0.05))
        assert sent[:2] == [(Atom("output"), Atom("stdout"), b"out line"),
                            (Atom("output"), Atom("stderr"), b"err line")]
        tag, level, logger, message = sent[2]
        assert (tag, level, logger) == (Atom("log"), Atom("warning"), "pyport")
        assert "3 line(s)" in message
        capture.push((1, b"last"))
        forwarder.stop()
        assert sent[-1] == (Atom("output"), Atom("stdout"), b"last")
    finally:
        loop.close()
        capture.close()


def test_log_handler_maps_notice():
    harness = PortHarness().start()
    from erlang._logging import ChannelLogHandler

    handler = ChannelLogHandler(harness.server)
    logger = logging.getLogger("pyport.notice")
    logger.addHandler(handler)
    logger.setLevel(1)
    try:
        logger.log(25, "a notice")
        assert harness.recv() == ("log", "notice", "pyport.notice", "a notice")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        harness.close()


# -- exec/eval options ---------------------------------------------------------------


def test_exec_and_eval_take_the_caller_in_options():
    harness = PortHarness().start()
    try:
        pid = _pyport.decode(b"\x83X" + b"w\x0dnonode@nohost" + bytes(12))
        id = make_ref(1)
        harness.send((Atom("eval"), id, "__import__('erlang').self()", {Atom("caller"): pid}))
        assert harness.recv() == ("result", id, ("ok", pid))
        harness.send((Atom("exec"), id, "x_from_exec = 1", {}))
        assert harness.recv() == ("result", id, ("ok", None))
        harness.send((Atom("eval"), id, "x_from_exec"))
        assert harness.recv() == ("result", id, ("ok", 1))
        harness.send((Atom("eval"), id, 42))
        status, (_, type_name, message, _) = harness.recv()[2]
        assert (status, type_name) == ("error", "TypeError")
    finally:
        harness.close()


# -- through the executable ------------------------------------------------------------


pytestmark_exe = pytest.mark.skipif(not os.access(EXE, os.X_OK), reason=f"{EXE} not built")


@pytestmark_exe
def test_start_failed_for_a_bad_path():
    port = PortProcess("--path", "/nonexistent/pyport-test")
    try:
        assert port.recv() == ("start_failed", ("bad_python_path", "/nonexistent/pyport-test"))
        assert port.wait() == 1
    finally:
        _, err = port.cleanup()
    assert b"not a directory" in err


@pytestmark_exe
def test_start_failed_for_a_bad_preload(tmp_path):
    port = PortProcess("--preload", "no_such_module_for_pyport")
    try:
        tag, (what, name, (python, type_name, _, _)) = port.recv()
        assert (tag, what, name, python, type_name) == (
            "start_failed", "preload_failed", "no_such_module_for_pyport", "python",
            "ModuleNotFoundError")
        assert port.wait() == 1
    finally:
        port.cleanup()


@pytestmark_exe
def test_start_failed_for_a_bad_venv(tmp_path):
    port = PortProcess("--venv", str(tmp_path))
    try:
        tag, (what, where, why) = port.recv()
        assert (tag, what, where) == ("start_failed", "bad_venv", str(tmp_path))
        assert "site-packages" in why
        assert port.wait() == 1
    finally:
        port.cleanup()


@pytestmark_exe
def test_capture_output_and_log_level(tmp_path):
    (tmp_path / "noisy_exe.py").write_text(textwrap.dedent("""
        import ctypes, logging, os, sys
        print("preload print")

        def noisy():
            print("to stdout", flush=True)
            print("to stderr", file=sys.stderr, flush=True)
            os.write(1, b"raw fd 1\\n")
            ctypes.CDLL(None).write(2, b"c fd 2\\n", 7)
            logging.getLogger("noisy").info("an info record")
            logging.getLogger("noisy").debug("a debug record")
            return "done"
    """))
    port = PortProcess("--path", str(tmp_path), "--preload", "noisy_exe",
                       "--capture-output", "--log-level", "info")
    try:
        got = [port.recv() for _ in range(2)]
        assert ("output", "stdout", "preload print") in got
        assert [p for p in got if p[0] == "ready"]
        id = make_ref(5)
        port.send(task(id, "noisy_exe", "noisy"))
        everything = []
        while ("result", id, ("ok", "done")) not in everything:
            everything.append(port.recv())
        port.send((Atom("stop"),))
        try:
            while True:  # what is left, up to EOF
                everything.append(port.recv())
        except EOFError:
            pass
        assert port.wait() == 0
        for expected in [("output", "stdout", "to stdout"), ("output", "stderr", "to stderr"),
                         ("output", "stdout", "raw fd 1"), ("output", "stderr", "c fd 2"),
                         ("log", "info", "noisy", "an info record")]:
            assert expected in everything, (expected, everything)
        assert not [p for p in everything if p[0] == "log" and p[1] == "debug"]
    finally:
        out, err = port.cleanup()
    assert b"to stdout" not in out and b"to stderr" not in err


@pytestmark_exe
def test_the_port_keeps_its_own_atoms_when_the_bound_is_used_up(tmp_path):
    (tmp_path / "atom_tasks.py").write_text(textwrap.dedent("""
        import asyncio, erlang

        def use_up():
            try:
                erlang.atom("atom_tasks_one_too_many")
            except erlang.AtomLimitError:
                return "limit"
            return "made"

        async def forever():
            await asyncio.sleep(100)
    """))
    port = PortProcess("--path", str(tmp_path), "--max-atoms", "0", "--capture-output")
    try:
        assert port.recv()[0] == "ready"
        id1, id2 = make_ref(1), make_ref(2)
        port.send(task(id1, "atom_tasks", "use_up"))
        assert port.recv() == ("result", id1, ("ok", "limit"))
        port.send(task(id2, "atom_tasks", "forever", deadline_ms=10))
        assert port.recv() == ("result", id2, ("error", "timeout"))
        port.send((Atom("stop"),))
        assert port.wait() == 0
    finally:
        port.cleanup()
