# The lab on a local kind cluster (included by the root Makefile).
# Tools are pinned and installed into ./bin as versioned files (bin/helm-v3.22.0, ...) by
# deploy/scripts/install-tool.sh, which keeps a copy in ~/.cache/perflab for fresh clones;
# an unversioned symlink (bin/helm -> helm-v3.22.0) lets skaffold find them on PATH.

KIND_VERSION ?= v0.33.0
KUBECTL_VERSION ?= v1.37.2
HELM_VERSION ?= v3.22.0
SKAFFOLD_VERSION ?= v2.24.0

KIND ?= $(CURDIR)/bin/kind-$(KIND_VERSION)
KUBECTL ?= $(CURDIR)/bin/kubectl-$(KUBECTL_VERSION)
HELM ?= $(CURDIR)/bin/helm-$(HELM_VERSION)
SKAFFOLD ?= $(CURDIR)/bin/skaffold-$(SKAFFOLD_VERSION)

CLUSTER ?= perflab
NAMESPACE ?= perflab
CHART := deploy/helm/perflab

# Which cluster `make up/down/smoke`, TARGET=kind load tests, faults and experiments use:
#   kind  a kind cluster in Docker (the default, for machines with Docker);
#   host  a single-node Kubernetes built and run on this Linux host by deploy/hostcluster/
#         (root only, opt-in: it changes the host until `make down PROVIDER=host`).
PROVIDER ?= kind
ifeq ($(PROVIDER),host)
HOSTCLUSTER := deploy/hostcluster/hostcluster.sh
HOSTCLUSTER_STATE ?= /var/lib/perflab-hostcluster
KUBE_CONTEXT := perflab-host
export KUBECONFIG := $(HOSTCLUSTER_STATE)/admin.kubeconfig
# The kubectl built with the cluster (the same Kubernetes version as its apiserver).
KUBECTL := $(HOSTCLUSTER_STATE)/bin/kubectl
else ifeq ($(PROVIDER),kind)
KUBE_CONTEXT := kind-$(CLUSTER)
else
$(error PROVIDER must be kind or host, not '$(PROVIDER)')
endif
export KUBE_CONTEXT
CLUSTER_ENV = PROVIDER=$(PROVIDER) KIND=$(KIND) KUBECTL=$(KUBECTL) HELM=$(HELM) CLUSTER=$(CLUSTER) \
	NAMESPACE=$(NAMESPACE) KUBE_CONTEXT=$(KUBE_CONTEXT)

##@ Cluster (kind, or PROVIDER=host)

.PHONY: up
up: ## Create the cluster (if absent), build and load the images, install everything, print URLs [PROVIDER=host].
ifeq ($(PROVIDER),host)
	@$(MAKE) $(HELM)
	$(HOSTCLUSTER) install
	$(CLUSTER_ENV) deploy/scripts/up.sh
else
	@deploy/scripts/check-docker.sh
	@$(MAKE) cluster-tools
	$(CLUSTER_ENV) deploy/scripts/up.sh
endif

.PHONY: dev
dev: cluster-tools ## skaffold dev on the cluster: rebuild, reload and redeploy a service when its code changes.
	$(SKAFFOLD) dev

.PHONY: down
down: ## Delete the cluster and everything in it (PROVIDER=host: stop it and put the host back as it was).
ifeq ($(PROVIDER),host)
	$(HOSTCLUSTER) stop
else
	@if [ -x "$(KIND)" ] && "$(KIND)" get clusters 2>/dev/null | grep -qx "$(CLUSTER)"; then \
	  "$(KIND)" delete cluster --name "$(CLUSTER)"; else echo "no kind cluster '$(CLUSTER)'"; fi
endif

.PHONY: smoke
smoke: ## Prove the deployed lab works: orders get paid, one trace spans all services, targets up, HPAs report CPU.
	deploy/scripts/smoke.py --kube-context $(KUBE_CONTEXT) --namespace $(NAMESPACE) --kubectl $(KUBECTL)

.PHONY: chart-render
chart-render: $(HELM) ## Render the chart with default values into results/perflab.yaml.
	@mkdir -p results
	$(HELM) template perflab $(CHART) --namespace $(NAMESPACE) > results/perflab.yaml
	@echo "results/perflab.yaml"

.PHONY: cluster-tools
cluster-tools: $(KIND) $(KUBECTL) $(HELM) $(SKAFFOLD) ## Install kind, kubectl, helm and skaffold (pinned) into ./bin.

$(KIND):
	deploy/scripts/install-tool.sh kind $(KIND_VERSION) $@ >/dev/null
	ln -sf $(notdir $@) $(dir $@)kind
$(KUBECTL):
	deploy/scripts/install-tool.sh kubectl $(KUBECTL_VERSION) $@ >/dev/null
	ln -sf $(notdir $@) $(dir $@)kubectl
$(HELM):
	deploy/scripts/install-tool.sh helm $(HELM_VERSION) $@ >/dev/null
	ln -sf $(notdir $@) $(dir $@)helm
$(SKAFFOLD):
	deploy/scripts/install-tool.sh skaffold $(SKAFFOLD_VERSION) $@ >/dev/null
	ln -sf $(notdir $@) $(dir $@)skaffold
