# Deployment build targets; included by the Makefile.
#
#   make build           `sam build` (no Docker), layer and functions with .pyc for python3.13
#   make check-build     build, then import both built handlers in a bare python3.13
#   make lint-template   expand the SAM template offline and cfn-lint the result
#
# SAM CLI lives in its own venv: installed beside the app it downgrades boto3 and pydantic.
SAM_VENV ?= .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed
# `sam build` needs the runtime's interpreter, python3.13, on PATH. Where it is not (a pyenv
# shim for an inactive version does not count), use pyenv's newest 3.13.
PY313_DIR := $(shell python3.13 -c '' >/dev/null 2>&1 || { command -v pyenv >/dev/null 2>&1 \
	&& v=$$(pyenv versions --bare | grep -E '^3\.13(\.[0-9]+)?$$' | sort -V | tail -1) \
	&& [ -n "$$v" ] && echo "$$(pyenv root)/versions/$$v/bin"; })
SAM_ENV := PATH="$(if $(PY313_DIR),$(PY313_DIR):)$$PATH" SAM_CLI_TELEMETRY=0 \
	AWS_DEFAULT_REGION="$${AWS_DEFAULT_REGION:-us-east-1}"

.PHONY: build check-build lint-template

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli
	touch $@

build: $(SAM_STAMP)
	$(SAM_ENV) $(SAM) build

check-build: build
	$(SAM_ENV) python3.13 scripts/check_build.py

lint-template: $(STAMP)
	$(BIN)/python scripts/lint_template.py
