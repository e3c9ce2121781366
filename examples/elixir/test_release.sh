#!/bin/sh
# The example deployed (part of `make test-elixir`): a copy of this Mix
# project is built into a release (`MIX_ENV=prod mix release`), the release
# is moved to a temporary directory, the copy's sources are deleted (as on
# a machine that only has the release), and a task runs from the moved
# release: it must find the port executable and the example's Python
# module where the release put them (config/runtime.exs,
# docs/elixir.md "Releases").
#
# The copy lives in ../../_build/elixir_release, two levels below the
# repository, so the example's `path: "../.."` dependency still names
# pyport; its _build and deps are kept between runs (incremental builds).
set -eu
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
REBAR=${REBAR:-rebar3}
copy="$ROOT/_build/elixir_release"
moved=$(mktemp -d "${TMPDIR:-/tmp}/pyport-release.XXXXXX")
trap 'rm -rf "$moved"' EXIT INT TERM

mkdir -p "$copy"
rm -rf "$copy/config" "$copy/lib" "$copy/priv" "$copy/mix.exs" "$copy/_build/prod/rel"
cp -R config lib priv mix.exs "$copy/"
# As `make test-elixir` does for mix test: Mix's incremental rebar3 build
# misses changed headers.
rm -rf "$copy/_build/prod/lib/pyport"

echo "==> mix release (MIX_ENV=prod) in $copy"
(cd "$copy" && MIX_ENV=prod MIX_HOME="$ROOT/_build/mix" MIX_REBAR3=$(command -v "$REBAR") \
   HEX_OFFLINE=1 mix release --quiet --overwrite)

mv "$copy/_build/prod/rel/pyport_example" "$moved/"
rm -rf "$copy/config" "$copy/lib" "$copy/priv" "$copy/mix.exs"
app="$moved/pyport_example"
echo "==> release moved to $app, its sources deleted"

# Nothing in the release may point back into the build tree.
links=$(find "$app" -type l)
if [ -n "$links" ]; then
  echo "FAIL: the release holds symbolic links:"; echo "$links"; exit 1
fi

out=$("$app/bin/pyport_example" eval '
  {:ok, _} = Application.ensure_all_started(:pyport_example)
  IO.inspect(PyportExample.fetch_all(["ada", "grace"]), label: "fetched")
' 2>&1) || { echo "$out"; echo "FAIL: the task failed in the moved release"; exit 1; }
echo "$out"
expected='fetched: [
  ok: %{"length" => 3, "missing" => nil, "name" => "ada"},
  ok: %{"length" => 5, "missing" => nil, "name" => "grace"}
]'
case "$out" in
  *"$expected"*) echo "==> the moved release ran example.fetch: ok" ;;
  *) echo "FAIL: expected"; echo "$expected"; exit 1 ;;
esac
