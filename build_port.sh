#!/bin/sh
# Builds the Rust port executable and installs it as priv/pyport.
# Called by rebar3's pre-compile hook and by `make`; cargo makes it a no-op
# when nothing changed.
set -e
cd "$(dirname "$0")"
cargo build --release --quiet --bins
mkdir -p priv
for bin in pyport pyport-echo; do
  if [ -f "target/release/$bin" ]; then
    # Copy to a temporary name and rename, so a running port is never
    # overwritten in place (ETXTBSY) and readers never see half a file.
    cp "target/release/$bin" "priv/.$bin.tmp"
    mv -f "priv/.$bin.tmp" "priv/$bin"
  fi
done
