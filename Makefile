# fedchain: the two commands users need are `make demo` and `make test`. Both install first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# anvil (linked into .venv/bin) and brownie must be found first.
export PATH := $(BIN):$(PATH)
# pip prints a warning for each package missing from the local extra index; keep the log readable.
PIP_QUIET := grep -v "is ignored: it is neither a file nor a directory" || true

NODES ?= 5
ROUNDS ?= 5

.PHONY: help install demo test browser hardhat bench-rounds bench-latency screenshots test-contracts test-invariants test-unit test-scale postgres test-e2e compile dist gas lint-contracts bench clean

help:
	@echo "make demo            install everything, then run a federation: $(NODES) nodes, $(ROUNDS) rounds"
	@echo "make test            install everything, then run every test (contracts, unit, end-to-end)"
	@echo "make install         .venv (pip), node_modules (npm), solc wrapper, anvil link; idempotent"
	@echo "make compile | dist | gas | lint-contracts | bench | bench-latency | test-contracts | test-invariants | test-unit | test-scale | test-e2e"
	@echo "make test-scale      the index on PostgreSQL and the blobs on S3, on real servers (docs/scale.md)"
	@echo "make dist            the wheel a node host installs (dist/fedchain-*.whl, ABI included; README)"
	@echo "make browser         Debian's chromium for the dashboard test (root: apt-get); make screenshots: docs/img/dashboard.png"
	@echo "BROWNIE_PORT=N       port of the contract tests' own anvil (default: a free one; never a chain on 8545)"

# ---------------------------------------------------------------------------------------------
# Installation (idempotent; stamps make a second run take seconds)
# `npm install`, not `npm ci`: npm 11 writes a lock without the other platforms' optional anvil
# packages and then `npm ci` refuses it. The lock (and package.json's exact versions) still pins
# every version and integrity hash; the install does not modify it.
node_modules/.stamp: package.json package-lock.json
	npm install --no-audit --no-fund 2>&1 | grep -v "nodedir" || true
	@test -d node_modules/solc -a -d node_modules/@openzeppelin/contracts || (echo "error: npm install failed; check access to the npm registry" >&2; exit 1)
	touch $@

$(VENV)/.stamp: requirements.txt requirements-nodeps.txt requirements-schemathesis.txt requirements-browser.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned exactly: the local CPU build. Any looser spec pulls CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0 2>&1 | $(PIP_QUIET)
	$(BIN)/pip install -q -r requirements.txt 2>&1 | $(PIP_QUIET)
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt 2>&1 | $(PIP_QUIET)
	# opacus' wheel ships a top-level `examples` package (its tutorials) that would shadow this
	# repo's examples/ (`--task examples.my_task:task`); nothing imports it at run time.
	rm -rf "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/examples"
	$(BIN)/pip install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e . 2>&1 | $(PIP_QUIET)
	# schemathesis (API schema test only) needs a newer hypothesis than brownie's pin: its own folder.
	$(BIN)/pip install -q --upgrade --target $(VENV)/schemathesis -r requirements-schemathesis.txt 2>&1 | $(PIP_QUIET)
	# playwright (the dashboard's browser test) drives Debian's chromium (`make browser`); it needs only greenlet.
	$(BIN)/pip install -q --no-deps -r requirements-browser.txt 2>&1 | $(PIP_QUIET)
	$(BIN)/python -c "import torch, brownie, fastapi, safetensors; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

install: node_modules/.stamp $(VENV)/.stamp
	$(BIN)/python tools/install_solc.py
	ln -sf "$$(node tools/link_anvil.js)" $(BIN)/anvil
	@$(BIN)/anvil --version | head -1

compile: install
	brownie compile
	@# the packaged ABI (fedchain/chain/abi/, committed) follows the artifact
	$(BIN)/python scripts/export_abi.py

# The wheel a node host installs: `pip install torch==2.13.0` first, then
# `pip install 'dist/fedchain-0.1.0-py3-none-any.whl[node]'` (README, "Run a node from the wheel").
# Built from a copy of the package sources (setuptools would otherwise write build/lib into
# brownie's build/ folder), without build isolation: the venv's setuptools, nothing downloaded.
dist: compile
	$(BIN)/python scripts/export_abi.py --check
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -r pyproject.toml README.md fedchain node "$$tmp/" && \
	  find "$$tmp" -name __pycache__ -prune -exec rm -rf {} + && mkdir -p dist && rm -f dist/fedchain-*.whl && \
	  $(BIN)/pip wheel -q --no-deps --no-build-isolation --wheel-dir dist "$$tmp"
	@ls -l dist/fedchain-*.whl

# ---------------------------------------------------------------------------------------------
# The two user commands
demo: install compile
	$(BIN)/fedchain demo --nodes $(NODES) --rounds $(ROUNDS)

test: install compile
	$(MAKE) --no-print-directory test-contracts test-invariants test-unit test-scale test-e2e

# brownie's development network is port 8545, and brownie attaches to whatever listens there (a
# user's own chain). The contract tests get their own anvil on BROWNIE_PORT (default: a free port)
# through a temporary brownie network (tools/brownie_test_network.py adds it, removes it after).
BROWNIE_PORT ?=
test-contracts:
	$(BIN)/python tools/brownie_test_network.py --port "$(BROWNIE_PORT)" -- brownie test tests/contracts

# Headless Chromium for the dashboard test: Debian's package (installed when running as root,
# as CI does; otherwise the test is skipped with this hint). Playwright's own browser download
# is never used: the test launches /usr/bin/chromium.
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the dashboard test (about a minute)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
	    || { echo "error: apt-get install chromium failed" >&2; exit 1; }; \
	else echo "warning: no chromium; the dashboard test will be skipped (sudo apt-get install chromium)" >&2; fi

# The README's dashboard picture: the browser test, saving docs/img/dashboard.png.
screenshots: install compile browser
	UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -p no:pytest-brownie -q tests/e2e/test_dashboard.py

# Foundry invariant + fuzz tests (test/forge, foundry.toml): forge is the pinned npm devDependency
# and compiles with the solc-js launcher `make install` links as .venv/bin/solc. Nothing is downloaded.
test-invariants: install
	$(CURDIR)/node_modules/.bin/forge test --offline --use $(BIN)/solc

test-unit:
	@if [ -d tests/unit ]; then $(BIN)/python -m pytest -p no:pytest-brownie -q tests/unit; fi

# Hardhat Network: a second, independent EVM node for tests/e2e/test_hardhat.py (its own npm folder).
hardhat: tools/hardhat/node_modules/.stamp

tools/hardhat/node_modules/.stamp: tools/hardhat/package.json tools/hardhat/package-lock.json
	cd tools/hardhat && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The index on PostgreSQL and the blob store on S3 (docs/scale.md), against real servers that the
# fixtures start and stop (tests/scale/services.py): a throwaway PostgreSQL cluster (initdb + pg_ctl
# in a temporary folder, on a free port; as root it runs as the postgres user) and moto_server (an
# S3-compatible server process, requirements-s3server.txt, installed apart in .venv/moto). PostgreSQL
# itself is Debian's package, installed with apt-get (as root) only if no initdb is found.
$(VENV)/moto/.stamp: requirements-s3server.txt
	$(BIN)/pip install -q --no-deps --upgrade --target $(VENV)/moto -r requirements-s3server.txt 2>&1 | $(PIP_QUIET)
	@test -d $(VENV)/moto/moto || { echo "error: installing moto into $(VENV)/moto failed" >&2; exit 1; }
	touch $@

postgres:
	@if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then :; \
	elif ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's postgresql for the scale tests (about a minute)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null \
	    || { echo "error: apt-get install postgresql failed" >&2; exit 1; }; \
	else echo "error: PostgreSQL (initdb, pg_ctl) not found: sudo apt-get install postgresql" >&2; exit 1; fi

test-scale: install compile $(VENV)/moto/.stamp postgres
	$(BIN)/python -m pytest -p no:pytest-brownie -q tests/scale

test-e2e: browser hardhat
	@if [ -d tests/e2e ]; then $(BIN)/python -m pytest -p no:pytest-brownie -q tests/e2e; fi

# ---------------------------------------------------------------------------------------------
gas: install compile
	brownie run scripts/gas.py

lint-contracts: install compile
	@# slither's crytic-compile walks up to foundry.toml and would build with forge: analyse a copy
	@# of contracts/ outside the repository instead, with the same solc-js and remappings.
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -r contracts "$$tmp/" && ln -s $(CURDIR)/node_modules "$$tmp/node_modules" && \
	  cd "$$tmp" && $(BIN)/slither contracts/ --solc-standard-json --solc $(BIN)/solc --solc-remaps "@openzeppelin=node_modules/@openzeppelin" --exclude-dependencies --filter-paths node_modules --fail-medium

# docs/benchmarks.md: hashing, codec, aggregation, and the round benchmark (N updates x P params
# through the streaming merge, peak RSS per case); about a minute. Then the round latency at 3, 10
# and 20 nodes on real processes (docs/benchmarks-latency.md, about 5 min). bench-round: only the
# round cases; bench-latency: only the latency.
bench: install compile
	@if [ -f scripts/bench.py ]; then $(BIN)/python scripts/bench.py; fi
	$(BIN)/python scripts/bench_latency.py

bench-latency: install compile
	$(BIN)/python scripts/bench_latency.py

bench-round:
	$(BIN)/python scripts/bench.py --round-only

# Round wall time on real processes, transparent against secure mode, with dropouts (~12 min):
# docs/benchmarks-rounds.md. The RMSE of secure mode against ε: scripts/secure_curve.py (docs/privacy.md).
bench-rounds: install compile
	$(BIN)/python scripts/bench_rounds.py

clean:
	rm -rf build reports .pytest_cache .hypothesis deployments/*.json
