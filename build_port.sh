#!/bin/sh
# Builds the Rust port executable and installs it as priv/pyport.
# Called by rebar3's pre-compile hook (and so by `mix compile` of a project
# that depends on pyport) and by `make`; cargo makes it a no-op when
# nothing changed. Cargo's progress goes to stderr, so that a first build
# (a few minutes: pyo3 and the port) is not a silent wait.
# PYPORT_FEATURES=echo also builds the benchmark floor priv/pyport-echo.
#
# The Python it builds against is pyo3's choice: PYO3_PYTHON, else the
# active virtualenv's, else `python3` on PATH. The build remembers it
# (TARGET/release/pyport.python) and refuses to rebuild for another one
# unless PYO3_PYTHON names it: a `rebar3 compile` after `pyenv global`
# or a venv changed must not swap the port's interpreter behind the user's
# back (docs/operations.md, "Building").
# CARGO_TARGET_DIR (default target) and PYPORT_PRIV_DIR (default priv)
# put a build elsewhere: `make test-pythons` keeps one per Python.
set -e
cd "$(dirname "$0")"
if ! command -v cargo >/dev/null 2>&1; then
  echo "pyport: cargo (stable Rust) is needed to build the port executable;" >&2
  echo "pyport: install it with https://rustup.rs, then compile again" >&2
  exit 1
fi
target="${CARGO_TARGET_DIR:-target}"
priv="${PYPORT_PRIV_DIR:-priv}"

# The interpreter pyo3 will pick, as pyo3-build-config finds it.
if [ -n "$PYO3_PYTHON" ]; then
  python="$PYO3_PYTHON"
elif [ -n "$VIRTUAL_ENV" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
  python="$VIRTUAL_ENV/bin/python"
elif [ -n "$CONDA_PREFIX" ] && [ -x "$CONDA_PREFIX/bin/python" ]; then
  python="$CONDA_PREFIX/bin/python"
else
  python=python3
fi
# "3.12 LIBDIR EXECUTABLE": what the port is linked against, then where it
# came from; the first two decide whether it is the same Python.
wanted=$("$python" -c 'import sys, sysconfig; print("%d.%d" % sys.version_info[:2], sysconfig.get_config_var("LIBDIR"), sys.executable)') || {
  echo "pyport: cannot run the Python to build against ($python); set PYO3_PYTHON to a CPython 3.10-3.13" >&2
  exit 1
}
record="$target/release/pyport.python"
if [ -f "$record" ] && [ -x "$target/release/pyport" ]; then
  built=$(cat "$record")
  if [ "$(echo "$built" | cut -d' ' -f1,2)" != "$(echo "$wanted" | cut -d' ' -f1,2)" ]; then
    if [ -z "$PYO3_PYTHON" ]; then
      set -- $built
      echo "pyport: $target/release/pyport was built for Python $1 ($3, libpython in $2)," >&2
      set -- $wanted
      echo "pyport: but this build would use Python $1 ($3, from $python): not rebuilding it for another Python silently." >&2
      echo "pyport: to keep the build:  PYO3_PYTHON=$(echo "$built" | cut -d' ' -f3)  (then compile again)" >&2
      echo "pyport: to rebuild for $1:  PYO3_PYTHON=$3  (then compile again)" >&2
      exit 1
    fi
    echo "pyport: rebuilding for Python $(echo "$wanted" | cut -d' ' -f1) (PYO3_PYTHON=$PYO3_PYTHON); it was built for $(echo "$built" | cut -d' ' -f1)" >&2
  fi
fi
# pyo3 is given the interpreter by its absolute path: left to search PATH
# it makes PATH part of the build's fingerprint, and PATH differs between a
# shell and rebar3's hooks (Erlang's bin directories come first), so each
# `make build` compiled pyo3 and the port twice.
PYO3_PYTHON=$(echo "$wanted" | cut -d' ' -f3-)
export PYO3_PYTHON

if [ ! -x "$target/release/pyport" ]; then
  echo "pyport: building the Rust port executable (first build: about a minute)" >&2
fi
if [ -n "$PYPORT_FEATURES" ]; then
  cargo build --release --bins --features "$PYPORT_FEATURES" >&2
else
  cargo build --release --bins >&2
fi
echo "$wanted" > "$record.tmp"
mv -f "$record.tmp" "$record"
mkdir -p "$priv"
for bin in pyport pyport-echo; do
  if [ -f "$target/release/$bin" ]; then
    # Copy to a temporary name and rename, so a running port is never
    # overwritten in place (ETXTBSY) and readers never see half a file.
    cp "$target/release/$bin" "$priv/.$bin.tmp"
    mv -f "$priv/.$bin.tmp" "$priv/$bin"
  fi
done
# The port finds the `erlang` package beside its executable.
if [ ! -e "$priv/python" ]; then
  ln -s "$(pwd)/priv/python" "$priv/python"
fi
# The port's own Python modules, compiled ahead: a port started where
# bytecode is not written (PYTHONDONTWRITEBYTECODE, a read-only priv/)
# would otherwise compile them from source at every start, ~20 ms and
# ~2 MB of RSS (docs/performance.md). The interpreter the port embeds
# does it, so the cache tag matches; a failure costs only that time.
if [ -x "$priv/pyport" ]; then
  "$priv/pyport" run -m compileall -q priv/python >&2 || \
    echo "pyport: could not precompile priv/python (the port compiles at start instead)" >&2
fi
