"""The executable in port mode, driven like Erlang's open_port does: packets
on fds 3 (in) and 4 (out), ``nouse_stdio``-style, plus the ``--path`` and
``--max-packet`` options."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import pyport_executable
from porthelp import Atom, FrameReader, frame, make_ref, task

EXE = pyport_executable()
pytestmark = pytest.mark.skipif(not os.access(EXE, os.X_OK), reason=f"{EXE} not built")


class PortProcess:
    """``pyport port ARGS`` with our pipes as its fds 3 and 4."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        in_r, self.in_w = os.pipe()
        self.out_r, out_w = os.pipe()
        # bash (dash takes single-digit fds only) moves the pipe ends to 3/4 and closes the originals,
        # exactly the fds Erlang's open_port(..., [nouse_stdio]) gives.
        script = f'exec "$0" port "$@" 3<&{in_r} 4>&{out_w} {in_r}<&- {out_w}>&-'
        self.proc = subprocess.Popen(
            ["bash", "-c", script, EXE, *args], pass_fds=(in_r, out_w),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        os.close(in_r)
        os.close(out_w)
        self.reader = FrameReader(self.out_r)

    def send(self, *terms) -> None:
        os.write(self.in_w, b"".join(frame(t) for t in terms))

    def recv(self):
        return self.reader.recv()

    def close_input(self) -> None:
        if self.in_w >= 0:
            os.close(self.in_w)
            self.in_w = -1

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def cleanup(self) -> tuple[bytes, bytes]:
        self.close_input()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:  # pragma: no cover - reported by the test
            self.proc.kill()
            self.proc.wait()
        out, err = self.proc.communicate()
        os.close(self.out_r)
        return out, err


@pytest.fixture
def modules(tmp_path):
    (tmp_path / "exe_tasks.py").write_text(textwrap.dedent("""
        import asyncio, os, sys

        def hello(name):
            return f"hello {name}"

        async def slow(x):
            await asyncio.sleep(0.01)
            return x

        def noisy():
            print("to stdout", flush=True)
            print("to stderr", file=sys.stderr, flush=True)
            os.write(1, b"raw fd 1\\n")
            return "quiet channel"

        def exe():
            return sys.executable

        def fd_target(fd):
            return os.readlink(f"/proc/self/fd/{fd}")

        def write_fd(fd, data):
            return os.write(fd, data.encode())

        def channel_fds():
            import gc
            return [(o.fd_in, o.fd_out) for o in gc.get_objects()
                    if type(o).__name__ == "Channel"]

        def package_file():
            import erlang
            return erlang.__file__
    """))
    return tmp_path


def test_ready_task_stop(modules):
    port = PortProcess("--path", str(modules))
    try:
        tag, info = port.recv()
        assert tag == "ready"
        assert info["protocol"] == 3 and info["mode"] == "shared_gil"
        assert info["os_pid"] == port.proc.pid  # bash exec'd into pyport
        assert info["python"] == sys.version.split()[0]
        id1, id2 = make_ref(1), make_ref(2)
        port.send(task(id1, "exe_tasks", "hello", ["port"]), task(id2, "exe_tasks", "slow", [7]))
        assert {port.recv(), port.recv()} == {("result", id1, ("ok", "hello port")),
                                              ("result", id2, ("ok", 7))}
        port.send((Atom("stop"),))
        assert port.wait() == 0
    finally:
        port.cleanup()


def test_eof_ends_the_port(modules):
    port = PortProcess("--path", str(modules))
    try:
        assert port.recv()[0] == "ready"
        port.close_input()
        assert port.wait() == 0
    finally:
        port.cleanup()


def test_stdout_and_stderr_do_not_touch_the_channel(modules):
    port = PortProcess("--path", str(modules))
    try:
        assert port.recv()[0] == "ready"
        id = make_ref(3)
        port.send(task(id, "exe_tasks", "noisy"))
        assert port.recv() == ("result", id, ("ok", "quiet channel"))
        port.send((Atom("stop"),))
        assert port.wait() == 0
    finally:
        out, err = port.cleanup()
    # Whatever the executable does with fds 1/2 (forward or pass through),
    # it never reaches the packet stream, which decoded cleanly above.
    assert b"\x83" not in out


def test_sys_executable_is_the_port_executable(modules):
    port = PortProcess("--path", str(modules))
    try:
        assert port.recv()[0] == "ready"
        id = make_ref(4)
        port.send(task(id, "exe_tasks", "exe"))
        _, _, (status, exe) = port.recv()
        assert status == "ok" and os.path.samefile(exe, EXE)
        port.send((Atom("stop"),))
        assert port.wait() == 0
    finally:
        port.cleanup()


def test_max_packet_option(modules):
    port = PortProcess("--path", str(modules), "--max-packet", "1000")
    try:
        assert port.recv()[0] == "ready"
        port.send(task(make_ref(5), "exe_tasks", "hello", ["x" * 5000]))
        tag, (what, detail) = port.recv()
        assert (tag, what) == ("error", "bad_packet")
        assert detail[0] == "too_large" and detail[2] == 1000
        id = make_ref(6)
        port.send(task(id, "exe_tasks", "hello", ["small"]))
        assert port.recv() == ("result", id, ("ok", "hello small"))
        port.send((Atom("stop"),))
        assert port.wait() == 0
    finally:
        port.cleanup()


def test_bad_option_exits_nonzero():
    port = PortProcess("--no-such-option")
    try:
        assert port.wait() != 0
    finally:
        _, err = port.cleanup()
    assert b"--no-such-option" in err


def test_channel_is_moved_off_fds_3_and_4(modules):
    port = PortProcess("--path", str(modules))
    try:
        assert port.recv()[0] == "ready"
        id1, id2, id3, id4 = (make_ref(n) for n in range(10, 14))
        port.send(task(id1, "exe_tasks", "fd_target", [3]), task(id2, "exe_tasks", "fd_target", [4]),
                  task(id3, "exe_tasks", "write_fd", [4, "garbage"]),
                  task(id4, "exe_tasks", "channel_fds"))
        assert port.recv() == ("result", id1, ("ok", "/dev/null"))
        assert port.recv() == ("result", id2, ("ok", "/dev/null"))
        # The stray write went nowhere: the next packet is intact.
        assert port.recv() == ("result", id3, ("ok", 7))
        (fd_in, fd_out), = port.recv()[2][1]
        assert fd_in >= 10 and fd_out >= 10
        port.close_input()  # the lifeline and the loop still see EOF
        assert port.wait() == 0
    finally:
        port.cleanup()


def test_inherited_paths_cannot_replace_the_package(modules, tmp_path):
    fake = tmp_path / "fake"
    (fake / "erlang").mkdir(parents=True)
    (fake / "erlang" / "__init__.py").write_text("raise SystemExit('fake erlang imported')\n")
    env = dict(os.environ, PYTHONPATH=str(fake), PYPORT_PYTHON_DIR=str(fake))
    port = PortProcess("--path", str(modules), env=env)
    try:
        assert port.recv()[0] == "ready"
        id = make_ref(20)
        port.send(task(id, "exe_tasks", "package_file"))
        tag, got_id, (ok, path) = port.recv()
        assert (tag, got_id, ok) == ("result", id, "ok")
        assert not path.startswith(str(fake)) and path.endswith("python/erlang/__init__.py")
    finally:
        port.cleanup()
