SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/bin:$(PATH)

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

.PHONY: venv
venv: $(VENV)/.installed ## Create the Python virtualenv with every service installed (editable).

$(VENV)/.installed: constraints.txt services/*/pyproject.toml dev/pyproject.toml requirements-dev.txt
	scripts/venv.sh $(VENV)
	@touch $@

.PHONY: proto
proto: venv ## Regenerate the checked-in gRPC/protobuf code from proto/.
	scripts/gen-proto.sh

.PHONY: dashboards
dashboards: venv ## Regenerate the chart's dashboards and rules/slo.yml from dashboards/build.py.
	$(PY) -m dashboards.build

##@ Local stack (no Docker)

.PHONY: local
local: venv ## Start PostgreSQL, Redis, Kafka, Prometheus, Jaeger and the four services; print URLs.
	scripts/install-infra.sh
	scripts/local-infra.sh up
	scripts/local-services.sh up

.PHONY: local-down
local-down: ## Stop everything `make local` started (and nothing else).
	-scripts/local-services.sh down
	scripts/local-infra.sh down

.PHONY: local-status
local-status: ## Show what the local stack runs.
	scripts/local-infra.sh status
	scripts/local-services.sh status

##@ Faults (see README: "Faults on demand")

TARGET ?= local
# On kind: inside the gateway pod (it reaches the cluster's Redis), in the lab's namespace.
KUBE_GATEWAY = $(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) exec deploy/perflab-gateway -c gateway --
FAULTS_CMD = $(if $(filter kind,$(TARGET)),$(KUBE_GATEWAY) python,$(PY)) -m perflab.common.faults

.PHONY: fault
fault: ## Switch a fault on the running lab: make fault NAME=payments_error_rate VALUE=0.5 [TARGET=kind]
	@[ -n "$(NAME)" ] && [ -n "$(VALUE)" ] || { echo "usage: make fault NAME=<fault> VALUE=<number>; make faults lists them"; exit 2; }
	$(FAULTS_CMD) set $(NAME) $(VALUE)

.PHONY: faults
faults: ## List the faults, what each demonstrates, and their current values.
	$(FAULTS_CMD) list

.PHONY: faults-reset
faults-reset: ## Switch every fault off.
	$(FAULTS_CMD) reset

.PHONY: chaos
chaos: venv ## The full chaos suite on an isolated copy of the stack (30 s outages); prints a table.
	CHAOS_FULL=1 $(PY) -m pytest tests/e2e/test_chaos.py -q -p no:cacheprovider

##@ Quality

.PHONY: lint
lint: venv ## ruff lint + format check, mypy on the services' and the experiments' code.
	ruff check .
	ruff format --check .
	mypy
	for definition in experiments/*/experiment.py; do mypy --no-error-summary "$$definition"; done

.PHONY: proto-check
proto-check: venv ## Fail when the generated protobuf code is stale.
	scripts/gen-proto.sh
	@if [ -n "$$(git status --porcelain -- services/common/src/perflab/contracts)" ]; then \
	  git status --porcelain -- services/common/src/perflab/contracts; \
	  echo "generated code is stale: run 'make proto' and commit"; exit 1; fi

.PHONY: test
test: venv ## Lint, generated-code check, unit, integration and end-to-end tests, then the cluster test.
	scripts/test.sh

.PHONY: test-cluster
test-cluster: venv ## The lab on a real Kubernetes built on this host (root): up, smoke, spike, pod deletion, dashboards, policies, down; a table.
	scripts/test-cluster.sh

.PHONY: test-unit
test-unit: venv ## Unit tests only (no infrastructure needed).
	$(PY) -m pytest -m "not integration and not e2e"

# PROFILE=1: `make bench` records a flame graph per service beside its figures, `make experiment`
# one per service and phase (local target only).
PROFILE ?=
SERVICE ?=
SECONDS ?= 30
# FORMAT=speedscope: a speedscope.app profile instead of the SVG flame graph.
FORMAT ?= flamegraph

.PHONY: bench
bench: venv ## Benchmark the local stack: P1-P4 against their goals, the change since the last run (results/bench/) [PROFILE=1].
	@command -v wrk >/dev/null || apt-get install -y -q wrk
	$(PY) scripts/bench.py $(if $(PROFILE),--profile)

# POD=<name>: with TARGET=kind, the pod to profile (default: the service's oldest ready pod).
POD ?=

.PHONY: profile
profile: venv ## Flame graph of a running service while load runs: make profile SERVICE=orders SECONDS=30 [FORMAT=speedscope] [TARGET=kind [POD=...]]
	@[ -n "$(SERVICE)" ] || { echo "usage: make profile SERVICE=gateway|orders|payments|worker [SECONDS=30] [TARGET=kind [POD=<pod>]]"; exit 2; }
	KUBECTL=$(KUBECTL) KUBE_CONTEXT=$(KUBE_CONTEXT) NAMESPACE=$(NAMESPACE) $(PY) scripts/flamegraph.py \
	  $(SERVICE) --seconds $(SECONDS) --format $(FORMAT) --target $(TARGET) $(if $(POD),--pod $(POD))

.PHONY: audit
audit: venv ## Known vulnerabilities in constraints.txt (pip-audit; offline safety-db when unreachable); allow-list: .pip-audit-ignore.
	$(PY) scripts/audit.py

-include deploy/cluster.mk
-include loadtests/loadtests.mk

##@ Experiments

# QUICK=1: a smoke run (short phases, one round, no conclusion; the report says "SMOKE RUN").
# AA=1: an A/A run (the baseline against itself): measures each metric's noise band.
QUICK ?=
AA ?=
# TARGET=kind reaches the cluster with the pinned kubectl (make up installs it).
EXPERIMENT = KUBECTL=$(KUBECTL) CLUSTER=$(CLUSTER) NAMESPACE=$(NAMESPACE) KUBE_CONTEXT=$(KUBE_CONTEXT) $(PY) -m experiments

.PHONY: experiment experiments experiments-list

experiment: venv ## One A/B experiment (TARGET=local: an isolated copy; kind: the cluster lab): make experiment NAME=cache-impact TARGET=local [QUICK=1] [AA=1] [PROFILE=1]
	@[ -n "$(NAME)" ] || { echo "usage: make experiment NAME=<experiment> [TARGET=local] [QUICK=1]; make experiments-list"; exit 2; }
	$(EXPERIMENT) run $(NAME) --target $(TARGET) $(if $(QUICK),--quick) $(if $(AA),--aa) $(if $(PROFILE),--profile)

experiments: venv ## Every experiment that applies to TARGET, one after the other [QUICK=1] [PROFILE=1].
	$(EXPERIMENT) all --target $(TARGET) $(if $(QUICK),--quick) $(if $(PROFILE),--profile)

experiments-list: venv ## The experiments, their question and where they run.
	$(EXPERIMENT) list
