"""Runs docs/tutorial.md as written (`make test-docs`).

The page marks what to run with HTML comments, invisible when rendered,
each before a fenced block:

* ``<!-- file: PATH -->``: the block is written to PATH (relative to the
  current directory of the steps);
* ``<!-- run -->``: the block is a shell script, run with ``sh -e`` in the
  current directory (a ``cd`` in it carries over to the next steps);
* ``<!-- output -->``: the block is what the previous ``run`` block printed
  on stdout, exactly (trailing spaces aside);
* ``<!-- cleanup: COMMAND -->``: run at the end, from the first step's
  directory, even if a step failed (stops what the page started).

Blocks without a marker are prose. Everything happens in a temporary
directory with ``PYPORT`` set to this repository; the script exits 1 at
the first step that fails or prints something else than the page says.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = os.path.join(ROOT, "docs", "tutorial.md")
STEP_TIMEOUT = 900.0  # the first compile builds the port when the clone has none

MARKER = re.compile(r"^<!--\s*(file|run|output|cleanup)\s*(?::\s*(.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(```+)\s*\w*\s*$")


@dataclass
class Step:
    kind: str  # file, run, output, cleanup
    arg: str
    body: str
    line: int


def parse(text: str) -> list[Step]:
    steps: list[Step] = []
    lines = text.splitlines()
    pending: tuple[str, str, int] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = MARKER.match(line)
        if marker:
            kind, arg = marker.group(1), marker.group(2) or ""
            if kind == "cleanup":
                steps.append(Step(kind, arg, "", i + 1))
            else:
                pending = (kind, arg, i + 1)
            i += 1
            continue
        fence = FENCE.match(line)
        if fence:
            end = i + 1
            while end < len(lines) and lines[end].strip() != fence.group(1):
                end += 1
            if end == len(lines):
                raise SystemExit(f"{PAGE}:{i + 1}: unclosed code block")
            if pending is not None:
                kind, arg, at = pending
                steps.append(Step(kind, arg, "\n".join(lines[i + 1:end]) + "\n", at))
                pending = None
            i = end + 1
            continue
        if pending is not None and line.strip():
            raise SystemExit(f"{PAGE}:{pending[2]}: a marker must be followed by a code block")
        i += 1
    return steps


def normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def run_shell(script: str, cwd: str, env: dict[str, str]) -> tuple[int, str, str, str]:
    """Runs script; returns (status, stdout, stderr, directory it ended in)."""
    with tempfile.NamedTemporaryFile("r", suffix=".cwd") as where:
        wrapped = f"set -e\n{script}\npwd > '{where.name}'\n"
        try:
            proc = subprocess.run(["sh", "-c", wrapped], cwd=cwd, env=env, text=True,
                                  stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            return 124, str(exc.stdout or ""), f"timed out after {STEP_TIMEOUT:.0f}s", cwd
        ended = where.read().strip() or cwd
    return proc.returncode, proc.stdout, proc.stderr, ended


def main() -> int:
    with open(PAGE) as f:
        steps = parse(f.read())
    runs = sum(1 for s in steps if s.kind == "run")
    if runs == 0:
        print(f"{PAGE}: nothing marked to run")
        return 1
    top = tempfile.mkdtemp(prefix="pyport-tutorial.")
    env = dict(os.environ, PYPORT=ROOT)
    cwd = top
    last_out: str | None = None
    cleanups = [s for s in steps if s.kind == "cleanup"]
    status = 0
    try:
        for step in steps:
            where = f"docs/tutorial.md:{step.line}"
            if step.kind == "file":
                path = os.path.join(cwd, step.arg)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(step.body)
                print(f"ok   {where}: wrote {step.arg}", flush=True)
            elif step.kind == "run":
                code, out, err, cwd = run_shell(step.body, cwd, env)
                first = step.body.strip().splitlines()[0]
                if code != 0:
                    print(f"FAIL {where}: `{first}` ... exited {code}\n--- stdout\n{out}"
                          f"--- stderr\n{err[-4000:]}")
                    status = 1
                    break
                print(f"ok   {where}: {first}", flush=True)
                last_out = out
            elif step.kind == "output":
                if last_out is None:
                    print(f"FAIL {where}: an output block with no command before it")
                    status = 1
                    break
                if normalise(last_out) != normalise(step.body):
                    print(f"FAIL {where}: the page says\n{step.body}--- but the commands printed\n"
                          f"{last_out}")
                    status = 1
                    break
                print(f"ok   {where}: output as shown", flush=True)
                last_out = None
    finally:
        for step in cleanups:
            code, out, err, _ = run_shell(step.arg, top, env)
            print(f"{'ok  ' if code == 0 else 'note'} cleanup: {step.arg} ({code})", flush=True)
        if status == 0:
            shutil.rmtree(top, ignore_errors=True)
        else:
            print(f"(left in {top})")
    if status == 0:
        print(f"docs/tutorial.md: {runs} commands and their outputs as written")
    return status


if __name__ == "__main__":
    sys.exit(main())
