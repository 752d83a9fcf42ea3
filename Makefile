# Release gate for a forecasting web service. `make release` runs the whole flow on the local target;
# `make test` runs lint, types, unit/integration tests, the scenarios and a smoke load run.
# Both create .venv from requirements.lock on first use.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENV_V2 := .venv-v2
STAMP_V2 := $(VENV_V2)/.installed
ARTIFACTS ?= artifacts
PROFILE ?= steady

.DEFAULT_GOAL := help
.PHONY: help venv venv-v2 lock lock-v2 build release test lint format typecheck unit managed-tests scenarios smoke bench clean

help:
	@echo "make release   build, deploy (local), verify, load ($(PROFILE)), judge, tear down; exit code = verdict"
	@echo "make test      lint, types, unit and integration tests, scenarios and a smoke load run"
	@echo "make bench     print the benchmark figures"
	@echo "make venv      create .venv from requirements.lock (make venv-v2: the azure-ai-ml environment)"
	@echo "make clean     remove artifacts/ and caches (keeps the virtual environments)"

$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "make: Python 3.11 is required (found %d.%d); set PYTHON=/path/to/python3.11" % sys.version_info[:2])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-deps -r requirements.lock
	$(BIN)/python -m pip check
	@touch $@

venv: $(STAMP)

$(STAMP_V2): requirements-v2.lock
	$(PYTHON) -m venv $(VENV_V2)
	$(VENV_V2)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_V2)/bin/python -m pip install --quiet --no-deps -r requirements-v2.lock
	@touch $@

venv-v2: $(STAMP_V2)

# Re-resolve the direct dependencies in requirements.in and pin the whole tree.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet -r requirements.in
	{ echo "# Fully pinned tree for .venv (Python 3.11). Regenerate: make lock"; .venv-lock/bin/python -m pip freeze --all | grep -v "^pip=="; } > requirements.lock
	rm -rf .venv-lock

lock-v2:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet -r requirements-v2.in
	{ echo "# Fully pinned tree for .venv-v2 (azure-ai-ml, Python 3.11). Regenerate: make lock-v2"; .venv-lock/bin/python -m pip freeze --all | grep -v "^pip=="; } > requirements-v2.lock
	rm -rf .venv-lock

build: venv
	$(BIN)/python -m service.build

release: venv
	$(BIN)/python -m release --profile $(PROFILE) --artifacts $(ARTIFACTS)

test: lint typecheck unit managed-tests smoke

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv
	$(BIN)/mypy

# venv-v2 too: the managed target's re-exec test needs the second environment.
unit: venv venv-v2
	$(BIN)/pytest tests

managed-tests: venv-v2
	$(VENV_V2)/bin/python -m pytest -p no:cacheprovider tests/test_deploy_managed.py

# The whole flow against a local deployment with the smoke profile: the scenarios run inside it.
smoke: venv
	$(BIN)/python -m release --profile smoke --artifacts $(ARTIFACTS)/smoke

bench: venv
	$(BIN)/python -m benchmarks.release_bench
	$(BIN)/python -m benchmarks.load_percentile_accuracy
	$(BIN)/python -m benchmarks.load_judge_quality
	$(BIN)/python -m benchmarks.load_generator_capacity

clean:
	rm -rf $(ARTIFACTS) .pytest_cache .mypy_cache .ruff_cache
