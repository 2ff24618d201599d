# attentive-connector — every command sets itself up on a fresh clone.
#   make demo    broker + Attentive sandbox + sample events + the connector, end to end
#   make test    ruff, mypy, then the whole pytest suite (integration tests on a real Kafka broker), on 2 workers
#   make bench   the benchmark (ARGS=--quick for the CI-sized run)
#   make chaos   the full-size multi-replica chaos test (>= 10,000 records; `make test` runs the CI-sized one)
#   make up      broker + Schema Registry + sandbox in the background, for running the commands yourself
#   make down    stop what `make up` started

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CACHE := .cache
HELM_VERSION := v3.22.0
HELM := $(CACHE)/bin/helm
# Kubernetes minor of helm's client-go (v0.37 → 1.37): the default "cluster" version `helm template/install`
# checks a chart's kubeVersion against. A plain `go install` leaves helm at v1.20 and v3.22 (unstamped).
HELM_K8S_MINOR := 37
HELM_STAMP := $(CACHE)/bin/.helm-$(HELM_VERSION)-k8s1.$(HELM_K8S_MINOR)
HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR) \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR)
DEV_STATE ?= $(CACHE)/dev-stack
ARGS ?=

export PATH := $(CURDIR)/$(CACHE)/bin:$(PATH)
export HELM := $(CURDIR)/$(HELM)

.PHONY: setup tools kafka-jars registry-jars helm promtool k8s lint format sync test unit chaos demo up down bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

kafka-jars: setup
	$(BIN)/python -m connector.devkafka.broker --fetch-only

# Apicurio Registry (the real, Confluent-compatible schema registry of the tests, demo and bench), once into .cache/.
registry-jars: setup
	$(BIN)/python -m connector.devkafka.apicurio --fetch-only

# Rebuilt when the stamp is missing (e.g. a cache holding an unstamped helm from an older Makefile).
$(HELM_STAMP):
	@command -v go >/dev/null || { echo "go is needed to build helm ($(HELM_VERSION)) from the Go module proxy"; exit 1; }
	GOBIN=$(CURDIR)/$(CACHE)/bin go install -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	[ "$$($(HELM) version --template '{{.Version}}')" = '$(HELM_VERSION)' ]
	touch $@

helm: $(HELM_STAMP)

# promtool and the Prometheus server (tests/integration/test_prometheus_alerts.py) ship in Debian's prometheus package.
promtool:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends prometheus; }
	@promtool --version | head -n 1

# etcd, kube-apiserver and kubectl built from the Go module proxy, the operators' CRDs: the chart's tests run
# against a real API server (ops/k8s/build.sh; skips what .cache already holds).
k8s:
	ops/k8s/build.sh

tools: setup kafka-jars registry-jars helm promtool k8s

lint: setup
	$(BIN)/ruff check connector tests bench ops
	$(BIN)/ruff format --check connector tests bench ops
	$(BIN)/mypy

# Regenerate the files derived from one source (alerts, dashboard, chart's rules.yaml, values schema).
sync: setup
	$(BIN)/python ops/sync.py

format: setup
	$(BIN)/ruff format connector tests bench ops
	$(BIN)/ruff check --fix connector tests bench ops

# Two passes: the tests not marked `serial` on two workers (pytest-xdist; each worker starts its own broker,
# registry and sandbox), then the `serial` ones alone — their bounds are rates and timings against the real
# clock. Both passes run; the target fails if either does. A pass that collects nothing (exit 5) fails the run
# unless ARGS narrowed it (`make test ARGS=tests/unit/test_config.py`).
NARROWED := $(if $(strip $(ARGS)),yes,)
test: tools lint
	@failed=0; \
	run_pass() { echo "== pytest -ra $$*"; $(BIN)/pytest -ra "$$@" $(ARGS) || { rc=$$?; \
	  [ $$rc = 5 ] && [ -n "$(NARROWED)" ] || failed=$$rc; }; }; \
	run_pass -n 2 --dist worksteal -m 'not serial'; \
	run_pass -m serial; \
	exit $$failed

unit: setup
	$(BIN)/pytest -ra tests/unit $(ARGS)

# Three replicas sharing one key through scale-ups, a SIGKILL, a broker kill -9 + restart, a registry outage and
# an unwritable dead-letter topic; prints the `chaos: ...` summary line (tests/integration/test_chaos.py).
chaos: setup kafka-jars registry-jars
	CHAOS_SIZE=full $(BIN)/pytest -ra -s tests/integration/test_chaos.py $(ARGS)

demo: setup kafka-jars registry-jars
	$(BIN)/attentive-connector demo $(ARGS)

# The local stack (broker, Schema Registry, Attentive sandbox) on fixed loopback ports, in the background;
# prints the `export` lines for the README's commands. `make down` stops it and removes its data.
up: setup kafka-jars registry-jars
	@$(BIN)/attentive-connector dev up --state-dir $(DEV_STATE) $(ARGS)

down: setup
	@$(BIN)/attentive-connector dev down --state-dir $(DEV_STATE)

bench: setup kafka-jars registry-jars
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) $(CACHE) .pytest_cache .mypy_cache .ruff_cache .hypothesis
