# mcp-oauth2: every install step lives here. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := build/tools
UV := $(TOOLS)/bin/uv
VENV := .venv
WHEELS := build/wheels
# A CPython 3.13 from pyenv, when the machine has one: the suite runs under it too.
PY313 := $(shell pyenv prefix 3.13.0 2>/dev/null || pyenv prefix 3.13 2>/dev/null || true)
VENV313 := .venv-3.13

export UV_PYTHON_DOWNLOADS := never
export UV_CACHE_DIR := $(CURDIR)/build/uv-cache

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.PHONY: install
install: $(UV) ## Create .venv with the locked development dependencies
	$(UV) sync --locked --inexact --python $(PYTHON)

.PHONY: build
build: install ## Build the abi3 release wheel and install it into .venv
	rm -rf $(WHEELS)
	$(VENV)/bin/maturin build --release --quiet --out $(WHEELS) --interpreter $(VENV)/bin/python
	$(UV) pip install --quiet --python $(VENV)/bin/python --reinstall --no-deps $(WHEELS)/*.whl

.PHONY: develop
develop: install ## Editable debug build into .venv (fast edit loop)
	$(VENV)/bin/maturin develop --uv

.PHONY: demo
demo: build ## The main job: local issuer + protected MCP server, driven by the MCP SDK client
	$(VENV)/bin/python -m mcp_oauth2.demo

.PHONY: serve
serve: build ## Keep the demo issuer and MCP server running; prints a token and a curl line
	$(VENV)/bin/python -m mcp_oauth2.demo serve

.PHONY: test
test: build test-rust test-python test-python313 ## Build everything and run the whole test suite

.PHONY: test-rust
test-rust: ## cargo test (the core, without Python)
	cargo test --locked --quiet

.PHONY: test-python
test-python: ## pytest against the installed wheel
	$(VENV)/bin/pytest

.PHONY: test-python313
test-python313: ## pytest under CPython 3.13 when pyenv has it (same abi3 wheel)
ifeq ($(PY313),)
	@echo "CPython 3.13 not found by pyenv: skipping the 3.13 run"
else
	UV_PROJECT_ENVIRONMENT=$(VENV313) $(UV) sync --locked --inexact --python $(PY313)/bin/python3
	$(UV) pip install --quiet --python $(VENV313)/bin/python --reinstall --no-deps $(WHEELS)/*.whl
	$(VENV313)/bin/pytest -p no:cacheprovider
endif

.PHONY: lint
lint: install ## ruff, mypy --strict, stubtest, cargo fmt --check, clippy -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m mypy.stubtest mcp_oauth2._rust --mypy-config-file pyproject.toml
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked --all-targets --features python,bench -- -D warnings

.PHONY: format
format: install ## Apply ruff and cargo formatting
	$(VENV)/bin/ruff format python tests benches
	$(VENV)/bin/ruff check --fix python tests benches
	cargo fmt

# BENCH_FULL=1 turns on the heavy loops of benches/test_comparison.py (without it, as in
# `make test`, each case runs once); BENCH_COMMAND is what the results say was run.
BENCH_ENV = BENCH_FULL=1 BENCH_COMMAND="make $@"

.PHONY: bench
bench: build ## Benchmarks: peers, threads, memory, middleware (3.11, and 3.13 if pyenv has it), Rust floor
	$(UV) sync --locked --inexact --group bench
	rm -f benches/results/suite-*.json
	$(BENCH_ENV) $(VENV)/bin/pytest benches --benchmark-enable --benchmark-only -p no:randomly \
		--benchmark-columns=min,median,mean,ops,rounds --benchmark-sort=name
ifneq ($(PY313),)
	UV_PROJECT_ENVIRONMENT=$(VENV313) $(UV) sync --locked --inexact --group bench --python $(PY313)/bin/python3
	$(UV) pip install --quiet --python $(VENV313)/bin/python --reinstall --no-deps $(WHEELS)/*.whl
	$(BENCH_ENV) $(VENV313)/bin/pytest -p no:cacheprovider benches/test_comparison.py \
		--benchmark-enable --benchmark-only -k "per_token or thread_scaling"
endif
	cargo bench --locked --features bench --bench verify_floor

.PHONY: bench-e2e
bench-e2e: build ## End to end: FastAPI under uvicorn (1 and 2 workers) with/without the middleware, wrk
	@command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq wrk; } || \
		echo "wrk is not available: benches/e2e.py falls back to its (much slower) httpx load"
	$(UV) sync --locked --inexact --group bench
	$(BENCH_ENV) $(VENV)/bin/python benches/e2e.py --duration 5 --reps 4 --reps-workers 6 --reps-stock 2

.PHONY: bench-crypto
bench-crypto: ## Rust floor benchmark of aws-lc-rs against ring
	cargo bench --locked --features compare-ring --bench verify_floor

# Fuzzing of the native core (cargo-fuzz, libFuzzer; nightly Rust). Each target runs on its own,
# one process, with a working corpus in build/fuzz (kept between runs) seeded from fuzz/seeds.
# Out-of-memory (-rss_limit_mb, -malloc_limit_mb) and slow inputs (-timeout, seconds) count as
# findings; findings land in build/fuzz/artifacts. A finding, once fixed, goes to
# fuzz/regressions/<target>, which `cargo test` replays with the seeds.
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ := $(TOOLS)/bin/cargo-fuzz
FUZZ_TARGETS := token jwks json base64url
FUZZ_SECONDS ?= 600
FUZZ_CI_SECONDS ?= 45
FUZZ_LIMITS := -rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=10

$(CARGO_FUZZ):
	cargo install --locked --quiet --root $(TOOLS) cargo-fuzz@$(CARGO_FUZZ_VERSION)

.PHONY: fuzz
fuzz: $(CARGO_FUZZ) ## Fuzz the native core, each target for FUZZ_SECONDS (default 600) in turn
	$(MAKE) --no-print-directory fuzz-run FUZZ_TIME=$(FUZZ_SECONDS)

.PHONY: fuzz-ci
fuzz-ci: $(CARGO_FUZZ) ## A short bounded fuzz run of every target (FUZZ_CI_SECONDS, default 45, each)
	$(MAKE) --no-print-directory fuzz-run FUZZ_TIME=$(FUZZ_CI_SECONDS)

.PHONY: fuzz-run
fuzz-run:
	for target in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus/$$target build/fuzz/artifacts/$$target; \
		echo "== fuzz $$target for $(FUZZ_TIME) s"; \
		PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" cargo +nightly fuzz run --fuzz-dir fuzz \
			--target-dir $(CURDIR)/build/fuzz/target $$target \
			$(CURDIR)/build/fuzz/corpus/$$target $(CURDIR)/fuzz/seeds/$$target -- \
			-max_total_time=$(FUZZ_TIME) $(FUZZ_LIMITS) -print_final_stats=1 \
			-artifact_prefix=$(CURDIR)/build/fuzz/artifacts/$$target/; \
	done

.PHONY: clean
clean: ## Remove build outputs and virtual environments
	rm -rf build target $(VENV) $(VENV313) .pytest_cache .mypy_cache .ruff_cache .hypothesis
