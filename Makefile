# The README's two commands: `make up` (minikube) and `make test` (everything, no cluster).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
# Empty: `make up` uses the overlay apps/event-pipeline.yaml points at (another one is refused:
# switch it in Git with `make overlay`).
OVERLAY ?=
# Empty: minikube. A kubectl context name: deploy onto that existing cluster (no minikube).
CONTEXT ?=

.PHONY: help prereqs venv lint validate test test-fast rehearsal local bench isolation-demo report up down dry-run overlay e2e e2e-cluster e2e-down e2e-breaks ui-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

prereqs: ## Debian packages the tests need (installed when root; see scripts/test-prereqs)
	scripts/test-prereqs

venv: $(VENV)/.done ## Create .venv (package + test tools) and .venv-checkov

$(VENV)/.done: requirements-dev.txt requirements-checkov.txt images/pipeline/pyproject.toml \
		images/pipeline/setup.py $(wildcard images/pipeline/src/event_pipeline/*.c)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt -e images/pipeline
	python3 -m venv .venv-checkov
	.venv-checkov/bin/pip install -q -r requirements-checkov.txt
	touch $@

lint: venv ## ruff, mypy, yamllint, shellcheck, hadolint, zizmor, workflow schema, actionlint (built from Go once)
	scripts/lint

validate: venv ## Render and validate every kustomization (scripts/validate)
	$(PY) scripts/validate

test: prereqs venv lint validate ## Everything CI runs: lint, validate, all tests (Docker, runsc, PostgreSQL)
	$(VENV)/bin/pytest

test-fast: venv ## Tests that need no Docker engine
	$(VENV)/bin/pytest -m "not docker and not slow"

rehearsal: venv ## Run the rendered workflows' steps as containers (Docker engine, runsc, PostgreSQL)
	$(VENV)/bin/pytest tests/rehearsal tests/images

local: venv ## One batch against a throwaway local PostgreSQL, top users ([COUNT=] [USERS=] [SEED=])
	$(PY) scripts/local-run $(if $(COUNT),--count $(COUNT)) $(if $(USERS),--users $(USERS)) $(if $(SEED),--seed $(SEED))

bench: venv $(VENV)/.bench-done ## Figures of generate/aggregate against DuckDB and chDB (installs requirements-bench.txt)
	$(PY) scripts/bench

$(VENV)/.bench-done: requirements-bench.txt $(VENV)/.done
	$(VENV)/bin/pip install -q -r requirements-bench.txt
	touch $@

isolation-demo: venv ## Same probe under runc, runsc and runsc+overlay here; comparison table
	scripts/isolation-demo

report: ## Pipeline and isolation results from the cluster's PostgreSQL
	scripts/report

up: ## Bring everything up on minikube, or on an existing cluster with CONTEXT=NAME (the overlay in Git)
	bootstrap/up $(if $(CONTEXT),--context $(CONTEXT)) $(if $(OVERLAY),--overlay $(OVERLAY))

dry-run: ## Print what `make up` would do ([CONTEXT=NAME])
	bootstrap/up $(if $(CONTEXT),--context $(CONTEXT)) $(if $(OVERLAY),--overlay $(OVERLAY)) --dry-run

down: ## Delete the minikube cluster
	bootstrap/down

overlay: ## Point the pipeline Application at OVERLAY (commit and push to deploy)
	scripts/switch-overlay $(OVERLAY)

# The e2e stages after start: python -m e2elib STAGE (tests/e2e/e2elib/__main__.py).
E2E_PY = PYTHONPATH=tests/e2e $(VENV)/bin/python -m e2elib

e2e: venv ## Real single-node cluster built from source: build, start, deploy, check, stop (E2E_KEEP=1 keeps it, E2E_BREAKS=1 adds the deliberate breaks)
	tests/e2e/run

e2e-cluster: venv ## Real cluster only (no deploy): build, start, cluster-check (runc, gVisor, DNS, PVC, NetworkPolicy, host untouched), stop
	tests/e2e/build
	tests/e2e/start
	$(E2E_PY) cluster-check; s=$$?; tests/e2e/stop || s=1; exit $$s

e2e-down: venv ## Stop a cluster kept by E2E_KEEP=1
	tests/e2e/stop

ui-check: venv ## On a kept cluster (E2E_KEEP=1): only the browser rows of the two web UIs (screenshots beside the report)
	$(E2E_PY) check "in Chromium"
e2e-breaks: venv ## On a kept cluster: each deliberately broken manifest must make the checks fail
	$(E2E_PY) breaks
