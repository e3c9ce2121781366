#!/bin/sh
# Builds the Rust port executable and installs it as priv/pyport.
# Called by rebar3's pre-compile hook (and so by `mix compile` of a project
# that depends on pyport) and by `make`; cargo makes it a no-op when
# nothing changed. Cargo's progress goes to stderr, so that a first build
# (a few minutes: pyo3 and the port) is not a silent wait.
# PYPORT_FEATURES=echo also builds the benchmark floor priv/pyport-echo.
set -e
cd "$(dirname "$0")"
if ! command -v cargo >/dev/null 2>&1; then
  echo "pyport: cargo (stable Rust) is needed to build the port executable;" >&2
  echo "pyport: install it with https://rustup.rs, then compile again" >&2
  exit 1
fi
if [ ! -x target/release/pyport ]; then
  echo "pyport: building the Rust port executable (first build: about a minute)" >&2
fi
if [ -n "$PYPORT_FEATURES" ]; then
  cargo build --release --bins --features "$PYPORT_FEATURES" >&2
else
  cargo build --release --bins >&2
fi
mkdir -p priv
for bin in pyport pyport-echo; do
  if [ -f "target/release/$bin" ]; then
    # Copy to a temporary name and rename, so a running port is never
    # overwritten in place (ETXTBSY) and readers never see half a file.
    cp "target/release/$bin" "priv/.$bin.tmp"
    mv -f "priv/.$bin.tmp" "priv/$bin"
  fi
done
# The port's own Python modules, compiled ahead: a port started where
# bytecode is not written (PYTHONDONTWRITEBYTECODE, a read-only priv/)
# would otherwise compile them from source at every start, ~20 ms and
# ~2 MB of RSS (docs/performance.md). The interpreter the port embeds
# does it, so the cache tag matches; a failure costs only that time.
if [ -x priv/pyport ]; then
  priv/pyport run -m compileall -q priv/python >&2 || \
    echo "pyport: could not precompile priv/python (the port compiles at start instead)" >&2
fi
