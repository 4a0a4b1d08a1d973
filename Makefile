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

.PHONY: help venv jars lint test bench-check test-unit test-integration test-k8s demo stack-up stack-down crds bench \
	backfill backfill-demo images e2e kind-up kind-down clean

help:
	@echo "make demo   - run the demo source end to end (starts the local stack)"
	@echo "make test   - lint, then unit, integration and k8s tests (starts what they need)"
	@echo "make backfill ARGS='--as-of 3' [FILE=source.yaml SOURCE=name] - re-merge Kafka or bronze into Postgres"
	@echo "make backfill-demo - after make demo: list the demo's bronze versions, replay them all (a no-op)"
	@echo "make crds   - regenerate crds/ (and the chart's copy) from the pydantic spec model"
	@echo "make bench  - run the benchmark suite (not part of make test), results in bench/results/"
	@echo "make images - build the operator, fetcher and Spark images (needs Docker)"
	@echo "make e2e    - the whole pipeline as pods on a kind cluster built here (Docker installed if"
	@echo "              missing; no image pulled); KEEP=1 leaves the cluster up. Not part of make test"
	@echo "make kind-up / kind-down - a whole kind environment with Terraform (needs Docker + internet)"
	@echo "make clean  - stop the local stack and remove .venv and .restlake"

# Every distribution of the repository, installed editable: the core (.) and one per component,
# each with its own pyproject.toml. requirements.lock pins every third-party dependency of them all.
DISTRIBUTIONS := . ./sql ./fetcher ./operator ./jobs/spark ./flows

$(STAMP): requirements.lock $(addsuffix /pyproject.toml,$(DISTRIBUTIONS))
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "restlake needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation $(addprefix -e ,$(DISTRIBUTIONS))
	touch $@

venv: $(STAMP)

# The folders too: removing a source changes its folder's time, not any remaining file's.
$(JARS_STAMP): $(STAMP) $(wildcard jvm/*/pom.xml) $(shell find jvm -name '*.java') $(shell find jvm -type d)
	$(BIN)/restlake stack jars
	touch $@

jars: $(JARS_STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: venv jars
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-k8s: venv
	$(BIN)/pytest tests/k8s $(PYTEST_ARGS)

test: venv jars lint bench-check
	$(BIN)/pytest tests $(PYTEST_ARGS)

# The benchmark suite is not run by the tests (it measures, it asserts nothing about speed), but
# its cases must still import and build specs the current rules accept.
bench-check: venv
	$(BIN)/python -m bench.run --check

demo: venv jars
	$(BIN)/restlake demo

# Backfills run against the local stack (started if it is down; `stack up` prints `export` lines,
# captured first so that a failed start stops the recipe). ARGS holds the range, Kafka
# (--from-time/--from-offsets [--to-time/--to-offsets]) or bronze (--from-version [--to-version] | --as-of).
FILE ?= examples/demo-link.yaml
SOURCE ?=
ARGS ?=
backfill: venv jars
	set -eo pipefail; env_lines=$$($(BIN)/restlake stack up); eval "$$env_lines"; \
	$(BIN)/restlake backfill -f $(FILE) $(if $(SOURCE),--source $(SOURCE)) $(ARGS)

# Replays every bronze version of the demo source; Postgres already holds all of it, so the summary
# must say inserted 0, updated 0, and the target fails otherwise.
DEMO_BRONZE = $$RESTLAKE_LAKE_ROOT/bronze/demo-link
backfill-demo: venv jars
	set -eo pipefail; env_lines=$$($(BIN)/restlake stack up); eval "$$env_lines"; \
	export RESTLAKE_LOG_LEVEL=WARNING RESTLAKE_SPARK_LOG_LEVEL=ERROR; \
	test -d "$(DEMO_BRONZE)" || { echo "no demo bronze table: run make demo first" >&2; exit 2; }; \
	RESTLAKE_SPARK_JARS=$$($(BIN)/restlake stack jars --classpath) $(BIN)/python -m restlake.jobs.spark.bronze_range "$(DEMO_BRONZE)"; \
	echo "replaying bronze versions 0..latest into Postgres:"; \
	$(BIN)/restlake backfill -f examples/demo-link.yaml --from-version 0 | tee $(STATE)/backfill-demo.json; \
	grep -qE '"inserted": 0[,}]' $(STATE)/backfill-demo.json && grep -qE '"updated": 0[,}]' $(STATE)/backfill-demo.json \
	  && echo "no-op replay: ok, every bronze row was already in Postgres, none inserted or updated" \
	  || { echo "no-op replay FAILED: rows were inserted or updated" >&2; exit 1; }

stack-up: venv jars
	$(BIN)/restlake stack up

stack-down: venv
	$(BIN)/restlake stack down

crds: venv
	$(BIN)/python -m restlake.contracts.crd --write crds/
	cp crds/ingestionsources.restlake.io.yaml crds/backfills.restlake.io.yaml charts/restlake/files/crds/

images:
	for t in operator fetcher spark; do \
	  docker build -f docker/Dockerfile --target $$t -t restlake/$$t:$(IMAGE_TAG) . || exit 1; \
	done

# Installs and starts Docker where missing, builds (and caches) the kind node image and every image
# from package registries, creates the cluster, runs tests/e2e, tears down (KEEP=1 keeps it).
e2e: venv jars
	$(BIN)/python tests/e2e/run.py

# kind-up applies in steps: kubernetes_manifest needs the cluster and the operators' CRDs at plan time.
kind-up: venv images
	TOFU=$$($(BIN)/python tests/k8s/gotools.py tofu | tail -1); KIND=$$($(BIN)/python tests/k8s/gotools.py kind | tail -1); set -e; \
	$$TOFU -chdir=$(TF) init -input=false; \
	$$TOFU -chdir=$(TF) apply -auto-approve -input=false -var restlake_image_tag=$(IMAGE_TAG) -target=kind_cluster.this; \
	$$KIND load docker-image restlake/operator:$(IMAGE_TAG) restlake/fetcher:$(IMAGE_TAG) restlake/spark:$(IMAGE_TAG) --name restlake; \
	$$TOFU -chdir=$(TF) apply -auto-approve -input=false -var restlake_image_tag=$(IMAGE_TAG) -target=helm_release.strimzi -target=helm_release.cloudnative_pg -target=helm_release.external_secrets; \
	$$TOFU -chdir=$(TF) apply -auto-approve -input=false -var restlake_image_tag=$(IMAGE_TAG)

kind-down: venv
	$$($(BIN)/python tests/k8s/gotools.py tofu | tail -1) -chdir=$(TF) destroy -auto-approve -input=false

BENCH_ARGS ?=
bench: venv jars
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	-test -x $(BIN)/restlake && $(BIN)/restlake stack down
	rm -rf $(VENV) $(STATE)
