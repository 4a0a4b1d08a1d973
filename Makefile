# Two commands on a fresh machine: `make demo` and `make test`. Every set-up step is a
# prerequisite here, so nothing has to be installed by hand first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE := .restlake
STAMP := $(VENV)/.installed-stamp
JARS_STAMP := $(STATE)/jars/.resolved-stamp
PYTEST_ARGS ?=

.PHONY: help venv jars lint test test-unit test-integration test-k8s demo stack-up stack-down crds bench clean

help:
	@echo "make demo   - run the demo source end to end (starts the local stack)"
	@echo "make test   - lint, then unit, integration and k8s tests (starts what they need)"
	@echo "make crds   - regenerate crds/ from the pydantic spec model"
	@echo "make clean  - stop the local stack and remove .venv and .restlake"

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "restlake needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

$(JARS_STAMP): $(STAMP) $(wildcard jvm/*/pom.xml)
	$(BIN)/restlake stack jars
	touch $@

jars: $(JARS_STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test: venv jars lint
	$(BIN)/pytest tests $(PYTEST_ARGS)

demo: venv jars
	$(BIN)/restlake demo

stack-up: venv jars
	$(BIN)/restlake stack up

stack-down: venv
	$(BIN)/restlake stack down

crds: venv
	$(BIN)/python -m restlake.contracts.crd --write crds/

clean:
	-test -x $(BIN)/restlake && $(BIN)/restlake stack down
	rm -rf $(VENV) $(STATE)
