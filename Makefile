# Thin wrappers: every target is a documented one-liner. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv test test-unit test-aws test-e2e lint demo bench envtest-bin kstatus-bin helm-bin chart-crds dist clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

venv: $(STAMP)  ## create .venv with rolekeeper installed editable (+ dev tools)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

envtest-bin:  ## build (once, cached) kube-apiserver, etcd, kubectl from the Go module proxy
	bash hack/build-envtest.sh

kstatus-bin:  ## build (once, cached) the kstatus checker that tests docs/status.md (hack/kstatus)
	bash hack/build-kstatus.sh

helm-bin:  ## build (once, cached) helm v3 from the Go module proxy, for the chart's tests
	bash hack/build-helm.sh

chart-crds:  ## copy crds/ and manifests/crds/ into charts/rolekeeper/crds/ (tests/unit/test_chart.py checks them)
	cp crds/*.yaml manifests/crds/kopf-peering.yaml charts/rolekeeper/crds/

test: venv envtest-bin kstatus-bin helm-bin  ## the whole suite: lint, unit, aws (moto server), e2e (real kube-apiserver)
	$(MAKE) lint
	$(BIN)/python -m pytest tests

test-unit: venv  ## pure-core tests only
	$(BIN)/python -m pytest tests/unit

test-aws: venv  ## tests against a moto server process
	$(BIN)/python -m pytest tests/aws

test-e2e: venv envtest-bin helm-bin  ## operator end to end on a local control plane
	$(BIN)/python -m pytest tests/e2e

lint: venv  ## ruff, mypy --strict on controller/, and the layer contracts (.importlinter)
	$(BIN)/ruff check .
	$(BIN)/mypy controller
	$(BIN)/lint-imports

# An existing cluster only when asked on the command line (make demo KUBECONFIG=...): a
# KUBECONFIG merely exported in the shell may point at production.
DEMO_CLUSTER := $(if $(filter command line,$(origin KUBECONFIG)),RK_DEMO_KUBECONFIG=$(KUBECONFIG),)

demo: venv  ## the main job end to end: control plane, AWS endpoint, operator, examples, drift fixed
	env -u KUBECONFIG $(DEMO_CLUSTER) $(BIN)/python -m tests.harness.demo

bench: venv envtest-bin  ## benchmarks; prints a table and writes bench/results/latest.json
	$(BIN)/python -m bench.run

dist:  ## sdist and wheel into dist/, built with the hash-locked setuptools (docs/plan.md: publishing)
	bash ci/build-dist.sh dist

clean:  ## remove the venv and caches in the checkout (not ~/.cache/rolekeeper)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
