#!/bin/sh
# `make test-pythons`: pyport against every supported CPython (3.10-3.13)
# this machine has, or the versions given (PYTHONS="3.12 3.13"; PYTHONS=other
# picks one besides python3's, as `make test` does).
#
# For each version, in _build/py<version>/ so that the default build is
# not touched:
#   target/  its own cargo target dir (CARGO_TARGET_DIR) and
#   priv/    its own port executable (PYPORT_PRIV_DIR), beside a link to
#            priv/python;
#   proj/    a copy of the rebar3 project whose erl_src/ct/test are links
#            to the real ones and whose priv/ is the one above, so the
#            Erlang side starts that executable (pyport_config finds it
#            in code:priv_dir(pyport));
# then:
#   1. builds the port for it (through rebar3's pre-compile hook);
#   2. checks that a `rebar3 compile` without PYO3_PYTHON, when python3 is
#      another Python, refuses to rebuild and names both (build_port.sh);
#   3. runs the Common Test smoke suites (PYTHONS_SUITES);
#   4. runs CPython's test_asyncio for that version on the loop against
#      stock asyncio of that version (conformance/run.py); it fails on any
#      test that passes on stock and not on a pyport loop.
# Prints one row per version and exits 1 if any step failed anywhere.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
REBAR=${REBAR:-rebar3}
SUITES=${PYTHONS_SUITES:-ct/py_event_loop_SUITE,ct/py_stream_SUITE,ct/py_types_SUITE}
CONFORMANCE_ARGS=${PYTHONS_CONFORMANCE_ARGS:-}
VERSIONS=${PYTHONS:-"3.10 3.11 3.12 3.13"}
PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}

# The newest interpreter of version $1 with a shared libpython (the port
# links against it), or nothing.
find_python() {
  for candidate in $(ls -d "$PYENV_ROOT"/versions/"$1".*/bin/python3 2>/dev/null | sort -V -r) \
                   /usr/local/bin/python"$1" /usr/bin/python"$1"; do
    [ -x "$candidate" ] || continue
    if "$candidate" -c 'import sysconfig, sys; sys.exit(not sysconfig.get_config_var("Py_ENABLE_SHARED"))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
}

default_version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)
# PYTHONS=other: the newest present version that is not python3's (what
# `make test` runs), or nothing to do.
if [ "$VERSIONS" = other ]; then
  VERSIONS=""
  for v in 3.13 3.12 3.11 3.10; do
    if [ "$v" != "$default_version" ] && [ -n "$(find_python "$v")" ]; then
      VERSIONS=$v; break
    fi
  done
  if [ -z "$VERSIONS" ]; then
    echo "==> no supported Python besides python3 ($default_version) here: nothing to test"
    exit 0
  fi
fi
status=0
rows=""
found=0
for v in $VERSIONS; do
  py=$(find_python "$v")
  if [ -z "$py" ]; then
    echo "==> Python $v: not on this machine (no python$v with a shared libpython), skipped"
    continue
  fi
  found=$((found + 1))
  dir="$ROOT/_build/py$v"
  logs="$dir/logs"
  mkdir -p "$dir/priv" "$dir/proj" "$logs"
  for d in erl_src ct test; do ln -sfn "$ROOT/$d" "$dir/proj/$d"; done
  ln -sfn "$dir/priv" "$dir/proj/priv"
  sed "s|sh ./build_port.sh|sh $ROOT/build_port.sh|" rebar.config > "$dir/proj/rebar.config"
  export CARGO_TARGET_DIR="$dir/target" PYPORT_PRIV_DIR="$dir/priv"
  # The default build's target/ is a head start for the Python it was made
  # for (cargo rebuilds only what differs); a copy leaves it untouched.
  if [ ! -d "$dir/target" ] && [ -f target/release/pyport.python ] && \
     [ "$(cut -d' ' -f1,2 target/release/pyport.python)" = \
       "$("$py" -c 'import sys, sysconfig; print("%d.%d" % sys.version_info[:2], sysconfig.get_config_var("LIBDIR"))')" ]; then
    cp -a target "$dir/target"
  fi
  started=$(date +%s)
  row_status=ok

  echo "==> Python $v ($py): building the port in $dir"
  if ! (cd "$dir/proj" && PYO3_PYTHON="$py" $REBAR compile) > "$logs/build.log" 2>&1; then
    tail -30 "$logs/build.log"
    echo "FAIL: build for Python $v (log: $logs/build.log)"
    rows="$rows$(printf '%-6s %s' "$v" "build failed")
"
    status=1
    continue
  fi
  # The version, and erlang.run (asyncio.Runner is 3.11+; 3.10 has its own path).
  loaded=$("$dir/priv/pyport" run -c 'import asyncio, sys, erlang
assert erlang.run(asyncio.sleep(0, "ok")) == "ok"
print(sys.version.split()[0])')
  case "$loaded" in
    "$v".*) ;;
    *) echo "FAIL: $dir/priv/pyport runs Python $loaded, not $v"; status=1; row_status=wrong-python ;;
  esac

  if [ "$v" != "$default_version" ] && [ "$default_version" != none ]; then
    echo "==> Python $v: rebar3 compile without PYO3_PYTHON (python3 is $default_version) must refuse"
    before=$(stat -c %Y "$dir/target/release/pyport")
    if (cd "$dir/proj" && env -u PYO3_PYTHON $REBAR compile) > "$logs/refuse.log" 2>&1; then
      echo "FAIL: rebar3 compile rebuilt or accepted the build for another Python"; status=1; row_status=no-refusal
    elif ! grep -q "built for Python $v" "$logs/refuse.log" || \
         ! grep -q "would use Python $default_version" "$logs/refuse.log"; then
      cat "$logs/refuse.log"
      echo "FAIL: the refusal does not name both Pythons"; status=1; row_status=no-refusal
    elif [ "$(stat -c %Y "$dir/target/release/pyport")" != "$before" ]; then
      echo "FAIL: the executable changed"; status=1; row_status=no-refusal
    else
      grep '^pyport:' "$logs/refuse.log" | sed 's/^/    /'
    fi
  fi

  echo "==> Python $v: Common Test ($SUITES)"
  (cd "$dir/proj" && PYO3_PYTHON="$py" $REBAR ct --suite "$SUITES") > "$logs/ct.log" 2>&1
  ct_rc=$?
  ct=$(grep -E "^(All [0-9]+ tests passed|Failed [0-9]+ tests)" "$logs/ct.log" | tail -1)
  [ -n "$ct" ] || ct="no result (log: $logs/ct.log)"
  echo "    $ct"
  if [ $ct_rc -ne 0 ]; then
    tail -40 "$logs/ct.log"
    echo "FAIL: Common Test on Python $v (log: $logs/ct.log)"; status=1; row_status=ct-failed
  fi

  echo "==> Python $v: CPython's test_asyncio, pyport loops against stock"
  # shellcheck disable=SC2086
  "$dir/priv/pyport" run conformance/run.py --results "$dir/conformance" $CONFORMANCE_ARGS \
    > "$logs/conformance.log" 2>&1
  conf_rc=$?
  sed -n '/^module /,$p' "$logs/conformance.log" | sed 's/^/    /'
  if [ $conf_rc -ne 0 ]; then
    echo "FAIL: conformance on Python $v differs from stock (log: $logs/conformance.log)"
    status=1; row_status=conformance-failed
  fi
  totals=$(grep '^TOTAL' "$logs/conformance.log" | awk '{printf "stock %s/%s/%s  erlang %s/%s/%s (%s regr.)  selector %s/%s/%s (%s regr.)", $2,$3,$4, $5,$6,$7,$8, $10,$11,$12,$13}')
  rows="$rows$(printf '%-6s %-7s %-34s %-s  %ss  %s' "$v" "$loaded" "$ct" "$totals" "$(( $(date +%s) - started ))" "$row_status")
"
done

echo
echo "version python  Common Test ($SUITES)   conformance passed/failed/skipped"
printf '%s' "$rows"
if [ "$found" -eq 0 ]; then
  echo "no Python of $VERSIONS found"; exit 1
fi
exit $status
