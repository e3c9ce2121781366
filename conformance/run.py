"""CPython's own test_asyncio against ErlangEventLoop, compared with stock.

Run inside pyport's executable (so that ``erlang`` and ``_pyport`` import)::

    priv/pyport run conformance/run.py [--jobs N] [--modules test_events ...]

Each module of ``test.test_asyncio`` runs three times, each in its own worker
process: as shipped (``stock``: ``asyncio.SelectorEventLoop`` on epoll), with
:class:`erlang.ErlangEventLoop` as the loop under test (``erlang``: the native
scheduling core) and with :class:`erlang.ErlangSelectorEventLoop` (``selector``:
the Python-only fallback). In the two pyport runs:

* the per-selector classes of ``test_events``, ``test_sock_lowlevel`` and
  ``test_sendfile`` (``EPollEventLoopTests``, ``PollEventLoopTests``, ...) are
  replaced, in both runs, by one ``LoopUnderTestEventLoopTests`` class built
  from the same mixins (as uvloop parameterises its tests), whose
  ``create_event_loop`` returns the stock epoll loop or an ErlangEventLoop;
* in the erlang run, ``asyncio.SelectorEventLoop`` (and 3.13's
  ``asyncio.EventLoop``) and ``asyncio.DefaultEventLoopPolicy`` are
  replaced by ErlangEventLoop-based
  equivalents, so ``asyncio.new_event_loop()``, ``asyncio.run()`` and every
  ``asyncio.SelectorEventLoop(...)`` in the tests make our loop (a stdlib
  selector passed in is swapped for our PollerSelector; mocks are kept).

A table of passed/failed/skipped per module for both runs is printed (and
written to ``conformance/results/``). Tests that pass on stock but fail on
erlang are run again, alone; the exit status is 1 if any still fails there,
0 otherwise. A test that hangs is stopped by a watchdog and counted as
failed; the worker restarts after it.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import importlib.util
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
import traceback
import unittest
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")

MODULES = [
    "test_events",
    "test_sock_lowlevel",
    "test_sendfile",
    "test_subprocess",
    "test_server",
    "test_ssl",
    "test_sslproto",
    "test_tasks",
    "test_futures",
    "test_locks",
    "test_queues",
    "test_streams",
    "test_timeouts",
    "test_taskgroups",
    "test_waitfor",
    "test_runners",
    "test_unix_events",
    # beyond the list in the issue: cheap, and they build loops too
    "test_base_events",
    "test_buffered_proto",
    "test_context",
    "test_threads",
]
MODES = ("stock", "erlang", "selector")
#: the runs compared with stock, and the loop class each puts under test
LOOP_MODES = {"erlang": "ErlangEventLoop", "selector": "ErlangSelectorEventLoop"}

#: modules whose loop tests come as one class per stdlib selector
PER_SELECTOR_MODULES = {"test_events", "test_sock_lowlevel", "test_sendfile"}
PER_SELECTOR_CLASSES = ("KqueueEventLoopTests", "EPollEventLoopTests",
                        "PollEventLoopTests", "SelectEventLoopTests")
LOOP_UNDER_TEST = "LoopUnderTestEventLoopTests"

PER_TEST_TIMEOUT = 60.0  # seconds before the watchdog ends a hung test
WORKER_RESTARTS = 10  # hung/crashed tests per module before giving up on it
RETRY_LIMIT = 25  # suspects per module worth running again alone

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


# =========================================================================
# worker side: runs one module in one mode, writes JSON lines
# =========================================================================

_loops_made = [0]  # ErlangEventLoops on our selector made in this worker

_STDLIB_SELECTORS = tuple(
    getattr(selectors, name)
    for name in ("SelectSelector", "PollSelector", "EpollSelector",
                 "DevpollSelector", "KqueueSelector")
    if hasattr(selectors, name)
)


def _erlang_loop_class(mode: str = "erlang") -> type:
    import erlang

    base: type = getattr(erlang, LOOP_MODES[mode])

    class ConformanceLoop(base):  # type: ignore[misc, valid-type]
        """ErlangEventLoop standing in for asyncio.SelectorEventLoop."""

        def __init__(self, selector: Any = None) -> None:
            if isinstance(selector, _STDLIB_SELECTORS):
                selector.close()  # a stdlib selector asked for: ours instead
                selector = None
            super().__init__(selector)
            if isinstance(self._selector, erlang.PollerSelector):
                _loops_made[0] += 1

    ConformanceLoop.__name__ = ConformanceLoop.__qualname__ = LOOP_MODES[mode]
    return ConformanceLoop


def patch_asyncio_for_erlang(mode: str = "erlang") -> type:
    """Make every stdlib way of getting a selector loop return ours."""
    import erlang
    from asyncio import unix_events

    loop_class = _erlang_loop_class(mode)

    class ConformancePolicy(erlang.ErlangEventLoopPolicy):
        _loop_factory = loop_class

    for mod in (asyncio, unix_events):
        mod.SelectorEventLoop = loop_class  # type: ignore[attr-defined]
        mod.DefaultEventLoopPolicy = ConformancePolicy  # type: ignore[attr-defined]
        if hasattr(mod, "EventLoop"):  # 3.13: the platform's loop, by another name
            setattr(mod, "EventLoop", loop_class)
    asyncio.set_event_loop_policy(ConformancePolicy())
    return loop_class


def parameterise(module: Any, mode: str, loop_class: type | None) -> None:
    """Swap the per-selector classes for one loop-under-test class."""
    template = getattr(module, "EPollEventLoopTests", None)
    if template is None:
        return
    for name in PER_SELECTOR_CLASSES:
        if hasattr(module, name):
            delattr(module, name)

    if mode == "stock":
        def create_event_loop(self: Any) -> asyncio.AbstractEventLoop:
            return asyncio.SelectorEventLoop(selectors.EpollSelector())
    else:
        assert loop_class is not None

        def create_event_loop(self: Any) -> asyncio.AbstractEventLoop:
            return loop_class()

    cls = type(LOOP_UNDER_TEST, template.__bases__,
               {"create_event_loop": create_event_loop,
                "__module__": module.__name__, "__qualname__": LOOP_UNDER_TEST})
    setattr(module, LOOP_UNDER_TEST, cls)


def iter_tests(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from iter_tests(item)
    else:
        yield suite


class RecordingResult(unittest.TestResult):
    """Writes one JSON line when a test starts and one with its outcome."""

    def __init__(self, out: TextIO, log: TextIO, test_timeout: float) -> None:
        super().__init__()
        self.test_timeout = test_timeout
        self.out = out
        self.log = log
        self.current: dict[str, tuple[str, str]] = {}

    def _emit(self, **record: Any) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self.current[test.id()] = (PASSED, "")
        self._emit(event="start", id=test.id())
        faulthandler.dump_traceback_later(self.test_timeout, exit=True, file=self.log)

    def stopTest(self, test: unittest.TestCase) -> None:
        faulthandler.cancel_dump_traceback_later()
        outcome, detail = self.current.pop(test.id(), (PASSED, ""))
        self._emit(event="result", id=test.id(), outcome=outcome, detail=detail)
        super().stopTest(test)

    def _set(self, test: Any, outcome: str, detail: str) -> None:
        test_id = test.id()
        if test_id not in self.current:
            # errors outside a test: setUpClass/setUpModule/tearDown*
            self._emit(event="result", id=test_id, outcome=outcome, detail=detail)
            return
        if self.current[test_id][0] != FAILED:
            self.current[test_id] = (outcome, detail)

    def _fail(self, test: Any, err: Any) -> None:
        text = "".join(traceback.format_exception(*err))
        self.log.write(f"FAIL {test.id()}\n{text}\n")
        self.log.flush()
        self._set(test, FAILED, text[-2000:])

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._fail(test, err)

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._fail(test, err)

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail(test, err)

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._set(test, SKIPPED, reason)

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._set(test, PASSED, "expected failure")

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._set(test, FAILED, "unexpected success")


def worker(mode: str, module_name: str, out_path: str, exclude_path: str | None,
           only_path: str | None, test_timeout: float) -> int:
    # Started from a background job, SIGINT may be inherited as ignored;
    # tests that interrupt themselves (test_runners) need Python's default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    loop_class = patch_asyncio_for_erlang(mode) if mode in LOOP_MODES else None
    module = importlib.import_module(f"test.test_asyncio.{module_name}")
    if module_name in PER_SELECTOR_MODULES:
        parameterise(module, mode, loop_class)
    loaded = unittest.defaultTestLoader.loadTestsFromModule(module)

    def read_ids(path: str | None) -> set[str] | None:
        if path is None:
            return None
        with open(path) as f:
            return {line.strip() for line in f if line.strip()}

    exclude = read_ids(exclude_path) or set()
    only = read_ids(only_path)
    tests = [t for t in iter_tests(loaded)
             if t.id() not in exclude and (only is None or t.id() in only)]
    suite = unittest.TestSuite(tests)
    with open(out_path, "a") as out:
        result = RecordingResult(out, sys.stderr, test_timeout)
        suite.run(result)
        out.write(json.dumps({"event": "loops", "count": _loops_made[0]}) + "\n")
    return 0


# =========================================================================
# parent side: schedules workers, compares, prints the table
# =========================================================================


@dataclass
class ModuleRun:
    module: str
    mode: str
    outcomes: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    restarts: int = 0
    erlang_loops: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)


def find_suspects(stock: ModuleRun, erl: ModuleRun) -> list[str]:
    """Tests that passed on stock and neither passed nor were skipped on erlang
    (failed, hung, or never run because the worker gave up)."""
    return sorted(t for t, o in stock.outcomes.items()
                  if o == PASSED and erl.outcomes.get(t) not in (PASSED, SKIPPED))


def run_worker(exe: str, mode: str, module: str, workdir: str, timeout: float,
               test_timeout: float, only: list[str] | None = None, tag: str = "",
               max_restarts: int = WORKER_RESTARTS) -> ModuleRun:
    run = ModuleRun(module, mode)
    base = os.path.join(workdir, f"{module}.{mode}{tag}")
    out_path, log_path, exclude_path = base + ".jsonl", base + ".log", base + ".exclude"
    only_path = None
    if only is not None:
        only_path = base + ".only"
        with open(only_path, "w") as f:
            f.write("\n".join(only) + "\n")
    for path in (out_path, exclude_path, log_path):
        open(path, "w").close()
    started = time.monotonic()
    while True:
        cmd = [exe, os.path.abspath(__file__), "--worker", mode, module,
               "--out", out_path, "--exclude", exclude_path,
               "--test-timeout", str(test_timeout)]
        if only_path:
            cmd += ["--only", only_path]
        with open(log_path, "a") as log:
            try:
                proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=log, timeout=timeout, cwd=workdir)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = None
                run.notes.append(f"worker timed out after {timeout:.0f}s")
        started_ids: list[str] = []
        with open(out_path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if record["event"] == "loops":
                    run.erlang_loops += record["count"]
                elif record["event"] == "start":
                    started_ids.append(record["id"])
                else:
                    run.outcomes[record["id"]] = record["outcome"]
                    run.details[record["id"]] = record.get("detail", "")
        unfinished = [i for i in started_ids if i not in run.outcomes]
        if code == 0 and not unfinished:
            break
        if not unfinished:
            run.outcomes[f"{module} (worker)"] = FAILED
            run.details[f"{module} (worker)"] = f"worker exited with {code}; see {log_path}"
            break
        # A test hung (watchdog) or crashed the worker: count it as failed,
        # then start again without everything already done.
        for test_id in unfinished:
            run.outcomes[test_id] = FAILED
            run.details[test_id] = f"hung or crashed the worker (exit {code}); see {log_path}"
        run.restarts += 1
        if run.restarts > max_restarts:
            run.notes.append("gave up after too many worker restarts")
            break
        with open(exclude_path, "w") as f:
            f.write("\n".join(run.outcomes) + "\n")
    run.seconds = time.monotonic() - started
    return run


def find_executable() -> str:
    if os.path.basename(sys.executable) == "pyport":
        return sys.executable
    candidate = os.path.normpath(os.path.join(HERE, "..", "priv", "pyport"))
    if os.access(candidate, os.X_OK):
        return candidate
    return sys.executable


def module_exists(name: str) -> bool:
    return importlib.util.find_spec(f"test.test_asyncio.{name}") is not None


def check_environment() -> str | None:
    try:
        import test.test_asyncio  # noqa: F401
    except ImportError as exc:
        return (f"CPython's test package is not installed ({exc}); install the "
                "interpreter's test suite (e.g. Debian: libpython3.11-testsuite)")
    try:
        import erlang  # noqa: F401
    except ImportError as exc:
        return f"{exc}\nrun this script with: priv/pyport run conformance/run.py"
    return None


def summarise(modules: list[str], runs: dict[tuple[str, str], ModuleRun],
              regressions: dict[str, dict[str, list[str]]]) -> str:
    """One row per module: stock, then each pyport run with its regressions
    and the pyport loops it made."""
    head = f"{'module':<20} {'stock pass':>10} {'fail':>5} {'skip':>5}"
    for mode in LOOP_MODES:
        head += (f"   {mode + ' pass':>13} {'fail':>5} {'skip':>5} "
                 f"{'regress':>7} {'loops':>5}")
    lines = [head, "-" * len(head)]

    def row_text(name: str, row: list[int]) -> str:
        text = f"{name:<20} {row[0]:>10} {row[1]:>5} {row[2]:>5}"
        for i in range(len(LOOP_MODES)):
            r = row[3 + 5 * i: 8 + 5 * i]
            text += f"   {r[0]:>13} {r[1]:>5} {r[2]:>5} {r[3]:>7} {r[4]:>5}"
        return text

    totals = [0] * (3 + 5 * len(LOOP_MODES))
    for module in modules:
        s = runs[(module, "stock")]
        row = [s.count(PASSED), s.count(FAILED), s.count(SKIPPED)]
        for mode in LOOP_MODES:
            e = runs[(module, mode)]
            row += [e.count(PASSED), e.count(FAILED), e.count(SKIPPED),
                    len(regressions[mode].get(module, [])), e.erlang_loops]
        totals = [a + b for a, b in zip(totals, row)]
        lines.append(row_text(module, row))
    lines.append("-" * len(head))
    lines.append(row_text("TOTAL", totals))
    lines.append("(loops: pyport loops on PollerSelector that each run made)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", nargs="+", default=MODULES, metavar="MODULE")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds per worker process (default 900)")
    parser.add_argument("--test-timeout", type=float, default=PER_TEST_TIMEOUT,
                        help="seconds before a hung test is stopped (default 60)")
    parser.add_argument("--results", default=RESULTS_DIR,
                        help="directory for logs and summary.json")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "MODULE"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--exclude", help=argparse.SUPPRESS)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        mode, module = args.worker
        return worker(mode, module, args.out, args.exclude, args.only, args.test_timeout)

    problem = check_environment()
    if problem:
        print(f"conformance: {problem}", file=sys.stderr)
        return 2
    # test_timeouts and test_taskgroups came with 3.11's asyncio.timeout
    # and TaskGroup; an older Python has no such module to compare.
    missing = [m for m in args.modules if not module_exists(m)]
    if missing:
        print(f"not in Python {sys.version.split()[0]}'s test_asyncio, skipped: "
              f"{' '.join(missing)}", flush=True)
        args.modules = [m for m in args.modules if m not in missing]
    exe = find_executable()
    os.makedirs(args.results, exist_ok=True)
    workdir = os.path.join(args.results, "logs")  # the last run's only
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    started = time.monotonic()
    jobs = [(module, mode) for module in args.modules for mode in MODES]
    runs: dict[tuple[str, str], ModuleRun] = {}
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_worker, exe, mode, module, workdir, args.timeout,
                               args.test_timeout): (module, mode)
                   for module, mode in jobs}
        for fut, key in futures.items():
            runs[key] = fut.result()
            r = runs[key]
            print(f"  {key[0]:<20} {key[1]:<7} {r.count(PASSED):>4} passed "
                  f"{r.count(FAILED):>3} failed {r.count(SKIPPED):>3} skipped "
                  f"({r.seconds:.0f}s{', restarts: %d' % r.restarts if r.restarts else ''})",
                  flush=True)

    # Tests that pass on stock but not on a pyport loop: run each module's
    # set again, alone, to tell real differences from load-induced flakiness.
    regressions: dict[str, dict[str, list[str]]] = {mode: {} for mode in LOOP_MODES}
    flaky: dict[str, dict[str, list[str]]] = {mode: {} for mode in LOOP_MODES}
    for mode in LOOP_MODES:
        for module in args.modules:
            suspects = find_suspects(runs[(module, "stock")], runs[(module, mode)])
            if not suspects:
                continue
            if len(suspects) > RETRY_LIMIT:  # not flakiness: no point waiting again
                regressions[mode][module] = suspects
                continue
            retry = run_worker(exe, mode, module, workdir, args.timeout, args.test_timeout,
                               only=suspects, tag=".retry", max_restarts=3)
            still = [t for t in suspects if retry.outcomes.get(t) != PASSED]
            if still:
                regressions[mode][module] = still
            passed_on_retry = [t for t in suspects if retry.outcomes.get(t) == PASSED]
            if passed_on_retry:
                flaky[mode][module] = passed_on_retry

    table = summarise(args.modules, runs, regressions)
    print()
    print(table)
    skipped_only: dict[str, dict[str, list[str]]] = {}
    for mode in LOOP_MODES:
        found = {m: sorted(t for t, o in runs[(m, mode)].outcomes.items()
                           if o == SKIPPED and runs[(m, "stock")].outcomes.get(t) == PASSED)
                 for m in args.modules}
        skipped_only[mode] = {m: v for m, v in found.items() if v}
    stock_failures = {m: sorted(t for t, o in runs[(m, "stock")].outcomes.items() if o == FAILED)
                      for m in args.modules}
    stock_failures = {m: v for m, v in stock_failures.items() if v}
    sections: list[tuple[str, dict[str, list[str]]]] = []
    for mode in LOOP_MODES:
        sections += [
            (f"passed on stock, failed on {mode} (also when run again alone)",
             regressions[mode]),
            (f"failed on {mode} under load, passed when run again alone", flaky[mode]),
            (f"passed on stock, skipped on {mode}", skipped_only[mode])]
    sections.append(("failed on stock too (not counted)", stock_failures))
    for title, groups in sections:
        if groups:
            print(f"\n{title}:")
            for module, ids in groups.items():
                for test_id in ids:
                    print(f"  {test_id}")
    summary = {
        "python": sys.version.split()[0],
        "seconds": round(time.monotonic() - started, 1),
        "modules": {m: {mode: {"passed": runs[(m, mode)].count(PASSED),
                               "failed": runs[(m, mode)].count(FAILED),
                               "skipped": runs[(m, mode)].count(SKIPPED),
                               "restarts": runs[(m, mode)].restarts,
                               "erlang_loops": runs[(m, mode)].erlang_loops,
                               "notes": runs[(m, mode)].notes}
                        for mode in MODES} for m in args.modules},
        # the native loop's, as before the fallback joined the run
        "regressions": regressions["erlang"],
        "regressions_by_mode": regressions,
        "flaky": flaky,
        "skipped_only_on_erlang": skipped_only["erlang"],
        "skipped_only_by_mode": skipped_only,
        "failed_on_stock": stock_failures,
        "details": {mode: {m: {t: runs[(m, mode)].details.get(t, "") for t in ids}
                           for m, ids in regressions[mode].items()}
                    for mode in LOOP_MODES},
        "logs": workdir,
    }
    with open(os.path.join(args.results, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    total_regressions = sum(len(v) for mode in LOOP_MODES for v in regressions[mode].values())
    print(f"\n{total_regressions} regression(s); {summary['seconds']:.0f}s; "
          f"logs in {workdir}")
    return 1 if total_regressions else 0


if __name__ == "__main__":
    sys.exit(main())
