# Two entry points for a newcomer: `make dev` (local stack) and `make test` (whole suite).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The runtime's interpreter (see build.mk for how python3.13 is found).
VENV313 ?= .venv313
BIN313 := $(VENV313)/bin
STAMP313 := $(VENV313)/.installed

.PHONY: dev test chromium lint typecheck unit integration e2e reliability bench clean plans

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(STAMP313): pyproject.toml
	PATH="$(if $(PY313_DIR),$(PY313_DIR):)$$PATH" python3.13 -m venv $(VENV313)
	$(BIN313)/python -m pip install --quiet --upgrade pip
	$(BIN313)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP313)

## the packaged mappings' plans, checked and written beside them as the layer's build does, so
## the checkout's cold starts load them as Lambda's do (dmhub_adapter/mapping/files.py)
plans: $(STAMP)
	$(BIN)/python -m dmhub_adapter.mapping.compile

## the local stack on the demo accounts (Ctrl-C stops it); flags through ARGS, e.g.
## make dev ARGS="--port 3100 --mappings-dir my-mappings"
ARGS ?=
dev: $(STAMP) plans
	$(BIN)/dmhub-adapter dev $(ARGS)

## Chromium for the console's browser tests, installed with apt when missing (CHROMIUM overrides)
chromium:
	bash scripts/ensure_chromium.sh

## the whole test suite: lint, types, unit, integration, end-to-end; then the unit and
## integration suites again on python3.13, the Lambda runtime's version
test: $(STAMP) $(STAMP313) plans chromium
	$(BIN)/ruff check layers tools functions tests bench scripts
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider
	$(BIN313)/pytest -q -p no:cacheprovider tests/unit tests/integration

lint: $(STAMP)
	$(BIN)/ruff check layers tools functions tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) plans
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) plans
	$(BIN)/pytest -q tests/integration

e2e: $(STAMP) plans chromium
	$(BIN)/pytest -q tests/e2e

reliability: $(STAMP) plans
	$(BIN)/pytest -q tests/reliability

## benchmarks: figures and ratios against their floors, measured in one run
bench: $(STAMP) plans
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(VENV313) .pytest_cache .mypy_cache .ruff_cache .aws-sam

# Build, import check and template lint targets (sam build needs no Docker here).
include build.mk
