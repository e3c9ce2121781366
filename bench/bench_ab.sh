#!/bin/sh
# make bench-ab BASE=<commit>: bench/pyport_bench.erl against the base
# commit's build and this checkout's, alternating, in one run.
#   BENCH_RUNS   rounds (default 5); each round runs every scenario once
#                per build, the order of the two builds swapped each round
#   BENCH_ONLY   comma-separated substrings of scenario names to run
#   BENCH_FLOOR  1 also measures the echo floor (default 0: off)
#   BENCH_PIN    a CPU list for taskset (default: unpinned)
# The base is checked out (detached) and built in _build/bench-ab/base-<sha>,
# a git worktree outside the source tree, with a copy of this checkout's
# cargo target as its warm cache; it is reused by later runs.
set -e
cd "$(dirname "$0")/.."
ROOT=$(pwd)
: "${BASE:?usage: make bench-ab BASE=<commit> [BENCH_RUNS=5] [BENCH_ONLY=a,b]}"
SHA=$(git rev-parse --verify "$BASE^{commit}")
SHORT=$(git rev-parse --short "$SHA")
HEAD_LABEL="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- || echo +dirty)"
RUNS=${BENCH_RUNS:-5}
AB="$ROOT/_build/bench-ab"
BASEDIR="$AB/base-$SHORT"
OUT="$AB/run-$(date +%Y%m%dT%H%M%S)"
mkdir -p "$AB" "$OUT"

if [ ! -d "$BASEDIR" ]; then
  git worktree add --detach "$BASEDIR" "$SHA" >&2
  [ -d target ] && cp -a target "$BASEDIR/target"
fi
echo "==> building BASE $SHORT in $BASEDIR" >&2
(cd "$BASEDIR" && PYPORT_FEATURES=echo sh build_port.sh && ${REBAR:-rebar3} compile >&2)
echo "==> building HEAD $HEAD_LABEL" >&2
PYPORT_FEATURES=echo sh build_port.sh
${REBAR:-rebar3} compile >&2
erlc -o "$AB" bench/pyport_bench.erl bench/pyport_cpu.erl bench/py_cluster_bench.erl bench/pyport_bench_ab.erl

PIN=""
[ -n "$BENCH_PIN" ] && PIN="taskset -c $BENCH_PIN"
run() { # side round dir
  echo "==> round $2/$RUNS: $1" >&2
  BENCH_RUNS=1 BENCH_TARGET="$3" BENCH_TERMS="$OUT/$1-$2.terms" BENCH_FLOOR=${BENCH_FLOOR:-0} \
    $PIN erl -noshell +sbwt none +sbwtdcpu none +sbwtdio none -pa "$3/_build/default/lib/pyport/ebin" -pa "$AB" \
      -eval 'pyport_bench:main(["ab"])' >>"$OUT/$1.log" 2>&1 || {
    echo "bench-ab: the $1 run failed, see $OUT/$1.log" >&2; tail -20 "$OUT/$1.log" >&2; exit 1; }
}
i=1
while [ "$i" -le "$RUNS" ]; do
  if [ $((i % 2)) -eq 1 ]; then run base $i "$BASEDIR"; run head $i "$ROOT"
  else run head $i "$ROOT"; run base $i "$BASEDIR"; fi
  i=$((i + 1))
done
erl -noshell -pa "$AB" -eval "pyport_bench_ab:main([\"$OUT\", \"$SHORT\", \"$HEAD_LABEL\"])"
