# mcp-oauth2: every install step lives here. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := build/tools
UV := $(TOOLS)/bin/uv
# actionlint checks the GitHub workflows; a Go program, built from the Go module proxy.
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := $(TOOLS)/bin/actionlint
VENV := .venv
# Stamps inside .venv: it was synced from uv.lock, and it holds the current wheel.
VENV_SYNCED := $(VENV)/.synced
VENV_WHEEL := $(VENV)/.wheel-installed
# `make wheel` writes the release wheel and the sdist here; everything else installs that wheel.
DIST := build/dist
# The wheel is a file target: it is rebuilt only when what goes into it changed, so `make test`
# after `make demo` (or the reverse) packages nothing again. The stamp stands for the wheel,
# whose name carries the version.
WHEEL_BUILT := $(DIST)/.wheel-built
# Every file under $(1) matching one of the patterns $(2), at any depth (make's own wildcard:
# no process is started, not even for `make help`).
rwildcard = $(foreach entry,$(wildcard $(1:=/*)),$(call rwildcard,$(entry),$(2)) $(filter $(subst *,%,$(2)),$(entry)))
WHEEL_INPUTS := Cargo.toml Cargo.lock pyproject.toml README.md LICENSE THIRD_PARTY_LICENSES.txt \
	$(call rwildcard,rust/src,*.rs) $(call rwildcard,python,*.py *.pyi py.typed)
# manylinux2014 = glibc 2.17: zig links against that glibc's symbol versions (see CONTRIBUTING.md).
MANYLINUX := manylinux2014
# `make bench` also runs under CPython 3.13 when pyenv has one (read when a recipe needs it).
PY313 = $(shell pyenv prefix 3.13.0 2>/dev/null || pyenv prefix 3.13 2>/dev/null || true)
VENV313 := .venv-3.13
# The fresh environments the suite runs in against the installed wheel, and what they install.
DIST_ENVS := build/dist-test
# The CPythons the whole suite runs under against the installed wheel (from pyenv).
DIST_PYTHONS := 3.11 3.12 3.13
# `make ci-full`: the CPythons other than the one `make test` (so .ci/run) runs the suite under.
CI_FULL_PYTHONS := 3.12 3.13
# Every extra the package declares, read from pyproject.toml (when a recipe needs it).
EXTRAS = $(shell $(PYTHON) -c "import tomllib; print(','.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']))")
# PATH without cargo, rustc and rustup: the installed wheel must need no Rust toolchain.
NO_RUST_PATH = $(shell printf '%s' "$$PATH" | tr ':' '\n' | grep -v -e '/\.cargo/' -e '/\.rustup/' -e rustup | paste -sd: -)
SUITE_REQUIREMENTS := $(DIST_ENVS)/test-requirements.txt $(DIST_ENVS)/constraints.txt

# $(call suite-in-fresh-venv,INTERPRETER,VENV[,RUNNER]): a fresh venv made from INTERPRETER (a
# shell word) holding the wheel in $(DIST) with every extra plus the test group, at the locked
# versions; the whole suite (tests/ and benches/, each benchmark run once) runs there with no
# Rust on PATH and checks (MCP_OAUTH2_EXPECT_INSTALLED) that it imports that installed copy.
# RUNNER (default pytest) is the command of that venv's bin/ that runs pytest.
define suite-in-fresh-venv
	rm -rf $(2) && python=$(1) && echo "fresh venv $(2) from $$python" && \
		$(UV) venv --quiet --python "$$python" $(2)
	$(UV) pip install --quiet --python $(2)/bin/python \
		-c $(DIST_ENVS)/constraints.txt -r $(DIST_ENVS)/test-requirements.txt \
		"mcp-oauth2[$(EXTRAS)] @ file://$(CURDIR)/$$(ls $(DIST)/*.whl)"
	PATH="$(NO_RUST_PATH)" MCP_OAUTH2_EXPECT_INSTALLED=1 $(2)/bin/$(or $(3),pytest) -p no:cacheprovider
endef

# Every folder of Python code the linters check.
PY_SOURCES := python tests benches examples dist_tests scripts interop
# Folders mypy checks one at a time: each has its own conftest.py and helpers imported by bare
# name (token_factory, harness), found through MYPYPATH; the package itself from its sources.
MYPY_FOLDERS := tests benches dist_tests

export UV_PYTHON_DOWNLOADS := never
export UV_CACHE_DIR := $(CURDIR)/build/uv-cache

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(ACTIONLINT):
	GOBIN=$(CURDIR)/$(TOOLS)/bin go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

.PHONY: install
install: $(VENV_SYNCED) ## Create .venv with the locked development dependencies

$(VENV_SYNCED): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --inexact --python $(PYTHON)
	touch $@

# maturin's zig support runs `python3 -m ziglang`: .venv/bin leads PATH so the pinned ziglang
# of the dev group is the one found.
$(WHEEL_BUILT): $(WHEEL_INPUTS) | $(VENV_SYNCED)
	rm -f $@ $(DIST)/*.whl
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/maturin build --release --locked --quiet \
		--zig --compatibility $(MANYLINUX) --out $(DIST) --interpreter $(VENV)/bin/python
	touch $@

.PHONY: wheel
wheel: $(WHEEL_BUILT) sdist ## The release files: the manylinux2014 abi3 wheel (built with zig) and the sdist
	@ls -l $(DIST)

.PHONY: sdist
sdist: $(VENV_SYNCED) ## The sdist (written anew each time: it holds the tests and examples too)
	rm -f $(DIST)/*.tar.gz
	$(VENV)/bin/maturin sdist --out $(DIST)

$(VENV_WHEEL): $(WHEEL_BUILT) | $(VENV_SYNCED)
	$(UV) pip install --quiet --python $(VENV)/bin/python --reinstall --no-deps $(DIST)/*.whl
	touch $@

.PHONY: build
build: $(VENV_WHEEL) ## Build the wheel when its sources changed and install it into .venv

.PHONY: develop
develop: $(VENV_SYNCED) ## Editable debug build into .venv (fast edit loop)
	rm -f $(VENV_WHEEL)
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(VENV)/bin/maturin develop --uv

.PHONY: demo
demo: $(VENV_WHEEL) ## The main job: local issuer + protected MCP server, driven by the MCP SDK client
	$(VENV)/bin/python examples/demo.py

.PHONY: serve
serve: $(VENV_WHEEL) ## Keep the demo issuer and MCP server running; prints a token and a curl line
	$(VENV)/bin/python examples/demo.py serve

.PHONY: test
test: build test-rust test-python ## Build what is needed, then cargo test and the whole suite once, against the installed wheel

.PHONY: test-rust
test-rust: ## cargo test (the core, without Python)
	cargo test --locked --quiet

.PHONY: test-python
test-python: $(WHEEL_BUILT) $(SUITE_REQUIREMENTS) ## The whole pytest suite against the wheel in a fresh venv, no Rust on PATH
	$(call suite-in-fresh-venv,$$(command -v $(PYTHON)),$(DIST_ENVS)/suite)

# Two CPU-bound processes beside `make test` on a 2-core machine: the suite must pass on a
# busy machine. The trap stops them however the run ends.
.PHONY: test-loaded
test-loaded: ## make test with two CPU-bound processes running beside it (a busy machine)
	@busy=""; trap 'kill $$busy 2>/dev/null || true' EXIT INT TERM; \
	for n in 1 2; do $(PYTHON) -c 'while True: pass' & busy="$$busy $$!"; done; \
	echo "make test beside two CPU-bound processes ($$busy)"; \
	$(MAKE) --no-print-directory test

.PHONY: soak
soak: $(VENV_WHEEL) ## Soak with faults: uvicorn, a misbehaving key server, 50 clients (about 2.5 minutes)
	$(VENV)/bin/python tests/soak/soak.py

.PHONY: soak-ci
soak-ci: $(VENV_WHEEL) ## The same soak, short (under 2 minutes; .ci/run runs it after the suite)
	$(VENV)/bin/python tests/soak/soak.py --short

# -- a real identity provider --------------------------------------------------------------------
# `make interop` runs the protected MCP server against Keycloak (interop/keycloak_interop.py). The
# server distribution comes from Maven Central, pinned by version and SHA-256 (the .sha256
# published beside it says the same), and is kept in build/interop between runs. Keycloak 26
# needs Java 21 or newer: the driver uses JAVA_HOME when it is one, else the newest JDK under
# /usr/lib/jvm.
KEYCLOAK_VERSION := 26.7.3
KEYCLOAK_SHA256 := 27a6535553c3cdcd083872ba40629efafb3475e3b758e0c6f691395561dd0f1f
KEYCLOAK_ZIP := build/interop/keycloak-quarkus-dist-$(KEYCLOAK_VERSION).zip
KEYCLOAK_URL := https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist/$(KEYCLOAK_VERSION)/keycloak-quarkus-dist-$(KEYCLOAK_VERSION).zip

$(KEYCLOAK_ZIP):
	mkdir -p $(@D)
	curl --fail --silent --show-error --location --retry 3 --output $@.part $(KEYCLOAK_URL)
	echo "$(KEYCLOAK_SHA256)  $@.part" | sha256sum --check --quiet
	mv $@.part $@

.PHONY: interop
interop: $(VENV_WHEEL) $(KEYCLOAK_ZIP) ## mcp-oauth2 against a real Keycloak: discovery, tokens, scopes, key rotation, outage
	echo "$(KEYCLOAK_SHA256)  $(KEYCLOAK_ZIP)" | sha256sum --check --quiet
	PYTHONPATH=examples $(VENV)/bin/python interop/keycloak_interop.py --distribution $(KEYCLOAK_ZIP)

# `make interop-hydra` runs the same server against Ory Hydra (interop/hydra_interop.py), the
# checks behind docs/providers/hydra.md. Hydra is built from the Go module proxy by the wrapper
# module interop/hydra (the version its go.mod requires, every module checked against its go.sum);
# SQLite needs cgo and Hydra's build tags. Not part of .ci/run.
HYDRA := build/interop/hydra
# The version go.mod requires, for `hydra version` (the binary's only record of it).
HYDRA_VERSION = $(shell awk '$$1 == "require" && $$2 == "github.com/ory/hydra/v2" {print $$3}' interop/hydra/go.mod)

$(HYDRA): interop/hydra/go.mod interop/hydra/go.sum interop/hydra/main.go
	mkdir -p $(@D)
	cd interop/hydra && CGO_ENABLED=1 go build -mod=readonly -trimpath \
		-tags sqlite,sqlite_omit_load_extension \
		-ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$(HYDRA_VERSION)" \
		-o $(CURDIR)/$@ .

.PHONY: interop-hydra
interop-hydra: $(VENV_WHEEL) $(HYDRA) ## mcp-oauth2 against a real Ory Hydra: the hydra.md recipe, JWT and opaque tokens
	PYTHONPATH=examples $(VENV)/bin/python interop/hydra_interop.py --hydra $(HYDRA)

# -- the distribution, tested as installed ------------------------------------------------------
.PHONY: dist-test
dist-test: wheel dist-check dist-suite dist-packaging ## Wheel checks, the suite against the installed wheel (3.11-3.13), imports per extra, the sdist
	@echo "dist-test: passed"

.PHONY: dist-check
dist-check: $(VENV_SYNCED) ## auditwheel, abi3audit and check-wheel-contents on the built wheel
	$(VENV)/bin/auditwheel show $(DIST)/*.whl
	$(VENV)/bin/abi3audit --strict --summary $(DIST)/*.whl
	$(VENV)/bin/check-wheel-contents $(DIST)/*.whl

# Locked versions for the fresh environments: the test group, and the constraints under which
# the wheel's own dependencies and extras are installed.
$(DIST_ENVS)/test-requirements.txt $(DIST_ENVS)/constraints.txt &: pyproject.toml uv.lock | $(UV)
	mkdir -p $(DIST_ENVS)
	$(UV) export --quiet --locked --only-group test --no-hashes --no-emit-project --no-header \
		-o $(DIST_ENVS)/test-requirements.txt
	$(UV) export --quiet --locked --no-dev --all-extras --no-hashes --no-emit-project --no-header \
		-o $(DIST_ENVS)/constraints.txt

.PHONY: dist-suite
dist-suite: $(addprefix dist-suite-,$(DIST_PYTHONS)) ## The whole pytest suite against the installed wheel, per CPython

# The wheel already in $(DIST) (the release workflow downloads it there), under CPython $*
# from pyenv, else python$* on PATH.
.PHONY: dist-suite-%
dist-suite-%: $(SUITE_REQUIREMENTS)
	$(call suite-in-fresh-venv,$$(scripts/cpython.sh $*),$(DIST_ENVS)/py$*)

.PHONY: dist-packaging
dist-packaging: $(VENV_SYNCED) sdist $(DIST_ENVS)/constraints.txt ## dist_tests/: the wheel's files and tag, imports per extra, a wheel built from the sdist
	MCP_OAUTH2_DIST=$(DIST) MCP_OAUTH2_UV=$(UV) MCP_OAUTH2_CONSTRAINTS=$(DIST_ENVS)/constraints.txt \
		$(VENV)/bin/pytest dist_tests -p no:cacheprovider

# -- coverage ------------------------------------------------------------------------------------
# Python: line and branch coverage of the package over the whole suite, run as `make test` runs it
# (against the wheel in a fresh venv) but under CPython $(COVERAGE_PYTHON): under 3.11, coverage's
# C tracer stops recording the calling code after an httpx stream whose connection fails (3.12
# and 3.13 record it), which would hide much of the command line. [tool.coverage] in
# pyproject.toml maps the installed copy back to python/mcp_oauth2, follows subprocesses (the
# console script's tests run it in other working directories, hence the absolute data file),
# lists the missed lines and fails under 95%. The report is printed even when a test failed.
# Rust: LLVM source-based coverage of the core over `cargo test`, by cargo-llvm-cov (with
# rustup's llvm-tools, whose LLVM is rustc's own), reported per file.
COVERAGE_PYTHON := 3.13
COVERAGE_VENV := $(DIST_ENVS)/coverage
CARGO_LLVM_COV_VERSION := 0.9.1
CARGO_LLVM_COV := $(TOOLS)/bin/cargo-llvm-cov

$(CARGO_LLVM_COV):
	rustup component add llvm-tools-preview
	cargo install --locked --quiet --root $(TOOLS) cargo-llvm-cov@$(CARGO_LLVM_COV_VERSION)

.PHONY: coverage
coverage: coverage-python coverage-rust ## Coverage: the package's lines and branches over the suite (fails under 95%), the Rust core's over cargo test

.PHONY: coverage-python
coverage-python: $(WHEEL_BUILT) $(SUITE_REQUIREMENTS) ## Line and branch coverage of python/mcp_oauth2 over the suite; missed lines listed; fails under 95%
	rm -rf build/coverage && mkdir -p build/coverage
	export COVERAGE_FILE=$(CURDIR)/build/coverage/python; status=0; \
	$(MAKE) --no-print-directory coverage-suite || status=$$?; \
	$(COVERAGE_VENV)/bin/coverage combine --quiet; \
	$(COVERAGE_VENV)/bin/coverage report; \
	exit $$status

.PHONY: coverage-suite
coverage-suite:
	$(call suite-in-fresh-venv,$$(scripts/cpython.sh $(COVERAGE_PYTHON)),$(COVERAGE_VENV),coverage run -m pytest)

.PHONY: coverage-rust
coverage-rust: $(CARGO_LLVM_COV) ## Line, region and function coverage of the Rust core over cargo test
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" cargo llvm-cov --locked

# -- CI ------------------------------------------------------------------------------------------
# .ci/run is what every change passes (under 12 minutes on 2 cores). ci-full is the rest, for
# the scheduled workflow and by hand: the suite under the other CPythons, the wheel checks and the
# sdist rebuilt from clean, coverage, a real Keycloak, and a short fuzz run.
.PHONY: ci-full
ci-full: $(WHEEL_BUILT) dist-check $(addprefix dist-suite-,$(CI_FULL_PYTHONS)) dist-packaging coverage interop fuzz-ci ## What .ci/run leaves out: other CPythons, packaging and the sdist build, coverage, Keycloak, fuzzing
	@echo "ci-full: passed"

.PHONY: lint
lint: lint-static lint-built ## Every linter: lint-static, then the checks that need the installed wheel

.PHONY: lint-static
lint-static: lint-python lint-ci lint-rust ## No build needed: lint-python, lint-ci and lint-rust

.PHONY: lint-python
lint-python: $(VENV_SYNCED) ## ruff (complexity limits too), ruff format --check, mypy --strict
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)
	$(VENV)/bin/mypy
	for folder in $(MYPY_FOLDERS); do \
		MYPYPATH=python:$$folder:examples $(VENV)/bin/mypy $$folder; \
	done

.PHONY: lint-ci
lint-ci: $(VENV_SYNCED) $(ACTIONLINT) ## actionlint and zizmor on the workflows; the pre-commit configuration
	$(ACTIONLINT) -no-color
	$(VENV)/bin/zizmor --offline --no-progress .github/workflows
	$(VENV)/bin/pre-commit validate-config

.PHONY: lint-rust
lint-rust: $(VENV_SYNCED) ## cargo fmt --check, clippy -D warnings (with and without the binding), the licence file against Cargo.lock
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked --all-targets --features python,bench -- -D warnings
	$(VENV)/bin/python scripts/third_party_licenses.py --check

.PHONY: lint-built
lint-built: $(VENV_WHEEL) docs ## After make build: stubtest of the native stub against the installed wheel; the docs build
	$(VENV)/bin/python -m mypy.stubtest mcp_oauth2._rust --mypy-config-file pyproject.toml

.PHONY: licenses
licenses: ## Rewrite THIRD_PARTY_LICENSES.txt (the crates linked into the extension) from Cargo.lock
	$(PYTHON) scripts/third_party_licenses.py

.PHONY: docs
docs: $(UV) ## Build the documentation site (mkdocs-material, --strict) into build/site
	$(UV) sync --locked --inexact --group docs --python $(PYTHON)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

.PHONY: docs-serve
docs-serve: docs ## Serve the documentation on http://127.0.0.1:8001 with live reload
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

.PHONY: format
format: $(VENV_SYNCED) ## Apply ruff and cargo formatting
	$(VENV)/bin/ruff format $(PY_SOURCES)
	$(VENV)/bin/ruff check --fix $(PY_SOURCES)
	cargo fmt

# The benchmark suite (pytest-benchmark; each case's rounds are interleaved with its peers', see
# benches/harness.py), written as pytest-benchmark JSON per interpreter and rendered by
# benches/report.py; BENCH_COMMAND is what the results say was run.
BENCH_PYTEST = benches -p no:cacheprovider --timeout=1800 --benchmark-enable --benchmark-only \
	--benchmark-columns=median,iqr,ops,rounds --benchmark-sort=fullname
BENCH_JSON = benches/results/suite-cpython

.PHONY: bench
bench: $(VENV_WHEEL) ## Benchmarks: Rust floor, then peers, threads, sessions, middleware, cold start (3.11 and 3.13 if pyenv has it); writes benches/results/
	$(UV) sync --locked --inexact --group bench
	rm -f $(BENCH_JSON)-*.json
	cargo bench --locked --features bench --bench verify_floor
	BENCH_COMMAND="make bench" $(VENV)/bin/pytest $(BENCH_PYTEST) --benchmark-json=$(BENCH_JSON)-3.11.json
	@if [ -z "$(PY313)" ]; then echo "CPython 3.13 not found by pyenv: no 3.13 run"; else \
		UV_PROJECT_ENVIRONMENT=$(VENV313) $(UV) sync --locked --inexact --python $(PY313)/bin/python3 && \
		$(UV) pip install --quiet --python $(VENV313)/bin/python --reinstall --no-deps $(DIST)/*.whl && \
		BENCH_COMMAND="make bench" $(VENV313)/bin/pytest $(BENCH_PYTEST) \
			--benchmark-json=$(BENCH_JSON)-3.13.json; fi
	$(VENV)/bin/python benches/report.py > /dev/null
	@echo "wrote benches/results/results.md and benches/results/validation.png"

.PHONY: bench-memory
bench-memory: $(VENV_WHEEL) ## The verified-token cache's memory: VmRSS growth of fresh interpreters over 20,000 cached 700-byte tokens
	$(VENV)/bin/python benches/cache_memory.py

# wrk is a Debian package (apt-get install wrk); without it the runner falls back to a much
# slower httpx load, whose figures only show that the path works.
.PHONY: bench-e2e
bench-e2e: $(VENV_WHEEL) ## End to end: FastAPI under uvicorn (1 and 2 workers) with/without the middleware, wrk
	@command -v wrk >/dev/null || echo "wrk is not installed (Debian/Ubuntu: apt-get install wrk;" \
		"macOS: brew install wrk): benches/e2e.py falls back to its much slower httpx load"
	$(UV) sync --locked --inexact --group bench
	BENCH_COMMAND="make $@" $(VENV)/bin/python benches/e2e.py --duration 5 --reps 4 --reps-workers 6

.PHONY: bench-introspection
bench-introspection: $(VENV_WHEEL) ## Opaque tokens: warm-cache cost beside fastmcp's IntrospectionTokenVerifier; calls/s under a flood
	$(UV) sync --locked --inexact --group bench
	$(VENV)/bin/python benches/introspection.py --rounds 5 --calls 20000 --flood-seconds 5 --workers 256

.PHONY: bench-dpop
bench-dpop: $(VENV_WHEEL) ## DPoP: a proof's cost per request for ES256 and EdDSA, beside the bare signature check and auth0-api-python
	$(UV) sync --locked --inexact --group bench
	$(VENV)/bin/python -W ignore benches/dpop.py

.PHONY: bench-exchange
bench-exchange: $(VENV_WHEEL) ## Token exchange: what a cached exchange adds to a downstream call; an uncached exchange at the local issuer
	$(VENV)/bin/python benches/token_exchange.py --rounds 5 --calls 20000 --requests 2000 --cold 300

.PHONY: bench-flood
bench-flood: $(VENV_WHEEL) ## A flood of random opaque tokens at 0.05, 0.2 and 0.5 s endpoint latency: calls/s, real users served, recovery (about 1 minute)
	$(VENV)/bin/python benches/introspection_flood.py --latencies 0.05 0.2 0.5 --seconds 10

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
FUZZ_TARGETS := token jwks json base64url authorization dpop
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
