"""The conformance harness itself: its patching and one small end-to-end run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import pyport_executable

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUN_PY = os.path.join(ROOT, "conformance", "run.py")

pytest.importorskip("test.test_asyncio")


def run_code(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([pyport_executable(), "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_erlang_mode_patches_every_way_to_get_a_loop():
    proc = run_code(f"""
        import asyncio, selectors, sys
        sys.path.insert(0, {os.path.dirname(RUN_PY)!r})
        import run, erlang
        run.patch_asyncio_for_erlang()
        loops = [asyncio.new_event_loop(), asyncio.SelectorEventLoop(),
                 asyncio.SelectorEventLoop(selectors.EpollSelector()),
                 asyncio.DefaultEventLoopPolicy().new_event_loop()]
        asyncio.set_event_loop_policy(None)  # what test_asyncio's tearDown does
        loops.append(asyncio.new_event_loop())
        print(all(isinstance(l, erlang.ErlangEventLoop) and
                  isinstance(l._selector, erlang.PollerSelector) for l in loops))
        print(asyncio.run(asyncio.sleep(0, type(asyncio.get_event_loop_policy()).__name__)))
        for l in loops: l.close()
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "ConformancePolicy"]


def test_per_selector_classes_become_one_loop_under_test_class():
    proc = run_code(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(RUN_PY)!r})
        import run, erlang
        import test.test_asyncio.test_sock_lowlevel as m
        loop_class = run.patch_asyncio_for_erlang()
        run.parameterise(m, "erlang", loop_class)
        print(sorted(n for n in dir(m) if n.endswith("EventLoopTests")))
        loop = m.LoopUnderTestEventLoopTests("test_sock_client_ops").create_event_loop()
        print(type(loop).__mro__[1].__name__, type(loop._selector).__name__)
        loop.close()
    """)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "['LoopUnderTestEventLoopTests']"
    assert lines[1] == "ErlangEventLoop PollerSelector"


def test_small_end_to_end_run(tmp_path):
    proc = subprocess.run(
        [pyport_executable(), RUN_PY, "--modules", "test_context", "test_queues",
         "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TOTAL" in proc.stdout and "0 regression(s)" in proc.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    queues = summary["modules"]["test_queues"]
    assert queues["stock"]["passed"] == queues["erlang"]["passed"] > 0
    assert queues["stock"]["passed"] == queues["selector"]["passed"]
    assert queues["erlang"]["erlang_loops"] > 0 and queues["selector"]["erlang_loops"] > 0
    assert summary["regressions"] == {}
    assert summary["regressions_by_mode"] == {"erlang": {}, "selector": {}}


def test_selector_mode_puts_the_python_only_loop_under_test():
    proc = run_code(f"""
        import asyncio, sys
        sys.path.insert(0, {os.path.dirname(RUN_PY)!r})
        import run, erlang
        run.patch_asyncio_for_erlang("selector")
        loop = asyncio.new_event_loop()
        print(isinstance(loop, erlang.ErlangSelectorEventLoop),
              isinstance(loop, erlang.ErlangEventLoop), type(loop).__name__)
        loop.close()
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False", "ErlangSelectorEventLoop"]


def test_suspects_are_stock_passes_that_erlang_did_not_pass():
    sys.path.insert(0, os.path.dirname(RUN_PY))
    try:
        import run as harness
    finally:
        sys.path.remove(os.path.dirname(RUN_PY))
    stock = harness.ModuleRun("m", "stock", outcomes={
        "a": "passed", "b": "passed", "c": "passed", "d": "passed", "e": "failed"})
    erl = harness.ModuleRun("m", "erlang", outcomes={
        "a": "passed", "b": "failed", "c": "skipped", "e": "failed", "f": "failed"})
    # b failed, d never ran; c skipped and e/f failed on stock too don't count
    assert harness.find_suspects(stock, erl) == ["b", "d"]
