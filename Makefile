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

IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
TF := terraform/kind

.PHONY: help venv jars lint test test-unit test-integration test-k8s demo stack-up stack-down crds bench \
	images kind-up kind-down clean

help:
	@echo "make demo   - run the demo source end to end (starts the local stack)"
	@echo "make test   - lint, then unit, integration and k8s tests (starts what they need)"
	@echo "make crds   - regenerate crds/ (and the chart's copy) from the pydantic spec model"
	@echo "make bench  - run the benchmark suite (not part of make test), results in bench/results/"
	@echo "make images - build the operator, fetcher and Spark images (needs Docker)"
	@echo "make kind-up / kind-down - a whole kind environment with Terraform (needs Docker + internet)"
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

test-integration: venv jars
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-k8s: venv
	$(BIN)/pytest tests/k8s $(PYTEST_ARGS)

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
	cp crds/ingestionsources.restlake.io.yaml charts/restlake/crds/

images:
	for t in operator fetcher spark; do \
	  docker build -f docker/Dockerfile --target $$t -t restlake/$$t:$(IMAGE_TAG) . || exit 1; \
	done

# kind-up applies in steps: kubernetes_manifest needs the cluster and the operators' CRDs at plan time.
kind-up: venv images
	TOFU=$$($(BIN)/python tests/k8s/gotools.py tofu | tail -1); KIND=$$($(BIN)/python tests/k8s/gotools.py kind | tail -1); set -e; \
	$$TOFU -chdir=$(TF) init -input=false; \
	$$TOFU -chdir=$(TF) apply -auto-approve -input=false -var restlake_image_tag=$(IMAGE_TAG) -target=kind_cluster.this; \
	$$KIND load docker-image restlake/operator:$(IMAGE_TAG) restlake/fetcher:$(IMAGE_TAG) restlake/spark:$(IMAGE_TAG) --name restlake; \
	$$TOFU -chdir=$(TF) apply -auto-approve -input=false -var restlake_image_tag=$(IMAGE_TAG) -target=helm_release.strimzi -target=helm_release.cloudnative_pg; \
	$$TOFU -chdir=$(TF) apply -auto-approve -input=false -var restlake_image_tag=$(IMAGE_TAG)

kind-down: venv
	$$($(BIN)/python tests/k8s/gotools.py tofu | tail -1) -chdir=$(TF) destroy -auto-approve -input=false

BENCH_ARGS ?=
bench: venv jars
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	-test -x $(BIN)/restlake && $(BIN)/restlake stack down
	rm -rf $(VENV) $(STATE)
