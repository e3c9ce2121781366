# pyport: one entry point. `make demo` runs it, `make test` tests it; both
# install whatever is missing first (`make deps`).

PYTHON  ?= python3
REBAR   ?= rebar3
APT_PKGS := erlang-nox erlang-dev rebar3 erlang-common-test erlang-dialyzer erlang-eunit
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORT    := priv/pyport
ERL_PA  := -pa _build/default/lib/pyport/ebin

.PHONY: all deps deps-apt deps-pip build demo test test-rust lint-rust \
        lint-python test-python eunit ct erl-checks conformance bench bench-ab bench-loop profile soak check-env clean \
        deps-elixir test-elixir test-pythons test-python-other test-docs

all: build

deps: deps-apt deps-pip

# Debian's Erlang/OTP and rebar3, only when something is missing.
deps-apt:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

# Debian's Elixir, for the Elixir example only (make test-elixir).
deps-elixir: deps-apt
	@command -v mix >/dev/null 2>&1 || { \
	  echo "==> installing elixir"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q elixir; }

deps-pip:
	@$(PYTHON) -c "import pytest, mypy" 2>/dev/null || \
	  $(PYTHON) -m pip install -q -r requirements-test.txt

build: deps
	sh build_port.sh
	$(REBAR) compile

demo: build
	@mkdir -p _build/demo
	erlc -o _build/demo examples/pyport_demo.erl
	erl -noshell $(ERL_PA) -pa _build/demo -eval 'pyport_demo:main()'

test: deps test-rust build eunit lint-python test-python ct erl-checks test-elixir conformance \
      test-python-other test-docs

test-rust: lint-rust
	cargo test --release

lint-rust:
	cargo fmt --check
	cargo clippy --release --all-targets --features echo -- -D warnings

eunit: build
	$(REBAR) eunit

# make ct SUITE=py_stream_SUITE [CASE=name]: one suite (or case) only.
ct: build
	$(REBAR) ct $(if $(SUITE),--suite ct/$(SUITE)) $(if $(CASE),--case $(CASE))

erl-checks: build
	$(REBAR) xref
	$(REBAR) dialyzer

lint-python: deps-pip
	MYPYPATH=priv/python $(PYTHON) -m mypy --strict priv/python/erlang

test-python: build
	$(PORT) run -m pytest -q test/python

# The Mix project in examples/elixir, with pyport as a rebar3 dependency:
# Mix uses Debian's rebar3 and needs nothing from hex.pm. pyport's beams
# there are rebuilt each time: Mix's incremental rebar3 build misses
# changed headers. Then the example as deployed: its release, built,
# moved away from the sources and run (examples/elixir/test_release.sh).
test-elixir: build deps-elixir
	rm -rf examples/elixir/_build/test/lib/pyport
	cd examples/elixir && MIX_HOME=$(CURDIR)/_build/mix MIX_REBAR3=$$(command -v $(REBAR)) \
	  HEX_OFFLINE=1 mix test
	REBAR=$(REBAR) sh examples/elixir/test_release.sh

conformance: build
	$(PORT) run conformance/run.py

# Every supported CPython (3.10-3.13) this machine has: the port built for
# each in _build/py3.X, the Common Test smoke suites and test_asyncio
# conformance against that version's stock asyncio (test/pythons/run.sh).
# PYTHONS="3.12 3.13" to choose.
test-pythons: deps
	REBAR=$(REBAR) sh test/pythons/run.sh

# make test's share: the newest Python besides python3's, with the
# conformance modules that finish in about a minute each (test_tasks,
# test_ssl, test_futures and test_subprocess take 70% of the time and run
# in test-pythons and, on the default Python, in conformance).
PYTHON_OTHER_MODULES := test_events test_sock_lowlevel test_sendfile test_server \
  test_sslproto test_locks test_queues test_streams test_timeouts test_taskgroups \
  test_waitfor test_runners test_unix_events test_base_events test_buffered_proto \
  test_context test_threads
test-python-other: deps
	PYTHONS=other PYTHONS_CONFORMANCE_ARGS="--modules $(PYTHON_OTHER_MODULES)" \
	  REBAR=$(REBAR) sh test/pythons/run.sh

# docs/tutorial.md, run as written in a temporary directory: rebar3 new
# app, pyport from _checkouts (this clone: its port is not rebuilt), a
# release started, asked and stopped (test/tutorial/run.py).
test-docs: build
	$(PYTHON) test/tutorial/run.py

# Not part of `make test`: figures, never assertions. Unpinned, then with
# the node and its ports pinned to one CPU (cross-CPU wake-ups cost ~30 us).
bench: build
	PYPORT_FEATURES=echo sh build_port.sh
	@mkdir -p _build/bench
	erlc -o _build/bench bench/pyport_bench.erl bench/pyport_cpu.erl bench/py_cluster_bench.erl
	erl -noshell +sbwt none +sbwtdcpu none +sbwtdio none $(ERL_PA) -pa _build/bench -eval 'pyport_bench:main(["unpinned"])'
	taskset -c 0 erl -noshell +sbwt none +sbwtdcpu none +sbwtdio none $(ERL_PA) -pa _build/bench -eval 'pyport_bench:main(["pinned"])'

# The same scenarios against BASE's build and this checkout's, alternating
# in one run; medians and HEAD/BASE ratios (docs/performance.md).
#   make bench-ab BASE=main BENCH_RUNS=5 BENCH_ONLY=sequential,1\ MiB
bench-ab: deps
	sh bench/bench_ab.sh

# Where one task's CPU goes (docs/performance.md, "CPU per task"):
#   make profile PROFILE_SCENARIO=fire|conc|seq|mib PROFILE_TOOLS=cpu,split,msacc,eprof,perf
profile: build
	@mkdir -p _build/bench
	erlc -o _build/bench bench/pyport_cpu.erl bench/pyport_profile.erl
	erl -noshell +JPperf true +sbwt none +sbwtdcpu none +sbwtdio none $(ERL_PA) -pa _build/bench -eval 'pyport_profile:main()'

# ErlangEventLoop against stock asyncio and uvloop (installed here, for
# the comparison only).
bench-loop: build
	@$(PYTHON) -c "import uvloop" 2>/dev/null || $(PYTHON) -m pip install -q uvloop
	$(PYTHON) bench/loop_bench.py

# A million tasks with random faults through the pool; resources before
# and after (docs/robustness.md). Not part of `make test`.
# SOAK_TASKS=100000 make soak  to scale it down.
soak: build
	@mkdir -p _build/soak
	erlc -o _build/soak bench/soak.erl
	erl -noshell $(ERL_PA) -pa _build/soak -eval 'soak:main()'

# What the configured application's loops would start with: the Python
# found, the venv, python_path, preload modules (docs/operations.md).
# CONFIG=path/to/sys.config to check a release's settings.
check-env: build
	erl -noshell $(ERL_PA) $(if $(CONFIG),-config $(CONFIG)) -eval 'pyport_envcheck:main()'

clean:
	cargo clean
	rm -rf _build priv/pyport priv/pyport-echo
