# The two commands a newcomer runs: `make demo` and `make test`. Everything else is set up from here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export UV_CACHE_DIR ?= $(CURDIR)/.local/uv-cache
# Bytecode is cached: with PYTHONDONTWRITEBYTECODE set (some CI images set it), every Dagster process
# (code server, run worker, CLI, each test's subprocess) recompiled Dagster from source, ~2x its start-up.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test install lock system-deps lint bench sandbox clean

install: $(STAMP)

# constraints.txt: the versions the tests last passed with (a release between two runs must not turn CI red)
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[local,dev,deploy]'
	@touch $(STAMP)

# Newest releases within pyproject.toml's bounds into constraints.txt; then `make test` before committing it.
lock:
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet uv; }
	@head -4 constraints.txt > constraints.txt.new
	$(BIN)/uv pip compile --quiet --python $(BIN)/python --no-header --no-annotate --extra local --extra dev --extra deploy pyproject.toml >> constraints.txt.new
	@mv constraints.txt.new constraints.txt

# Optional system packages the tests use when they can: OpenSSH's sshd (a second, real SFTP server),
# Debian's Chromium (the UI screenshot test) and PostgreSQL (the production-instance test). Skipped quietly
# when apt or root is not available.
system-deps:
	@bash scripts/system-deps.sh

demo: install
	@$(BIN)/python -m compileall -q fc_assets > /dev/null
	$(BIN)/fc-assets demo

# Three workers on two cores: many tests wait on servers (sensor ticks, polling, backoff). Each worker takes a
# whole file, heaviest first (fc_assets_tests/conftest.py). `.venv/bin/python -m pytest FILE` runs in one process.
# Our own modules' bytecode is written first: where PYTHONDONTWRITEBYTECODE=1 (CI shells) every Dagster process
# would otherwise recompile the code location (~0.2 s a process, dozens of processes).
test: install system-deps
	@$(BIN)/python -m compileall -q fc_assets fc_assets_tests bench > /dev/null
	$(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder

lint: install
	$(BIN)/ruff check fc_assets fc_assets_tests bench
	$(BIN)/ruff format --check fc_assets fc_assets_tests bench

# Benchmarks (under 30 minutes; not part of `make test`): bench/run_all.py runs each, prints one table (ours vs a
# baseline measured in the same run) and writes bench/results/<date>.json.
bench: install
	@$(BIN)/python -m compileall -q fc_assets bench > /dev/null
	$(BIN)/python bench/run_all.py

sandbox: install
	$(BIN)/fc-assets sandbox

clean:
	rm -rf $(VENV) .dagster_home .local
