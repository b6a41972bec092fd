#!/usr/bin/env bash
# The add-ons a kind cluster plus `make up` would give the lab, installed on the host cluster
# from the programs build.sh compiled and the images images.sh built:
#   - cluster DNS (CoreDNS), a default StorageClass with hostPath volumes;
#   - metrics-server (the HPAs read CPU from it), from its module's own manifests;
#   - the Prometheus Operator with its CRDs (its module's bundle.yaml), a Prometheus configured
#     like deploy/monitoring/kube-prometheus-stack.values.yaml, kube-state-metrics (its module's
#     example manifests) and the kubelet/cAdvisor ServiceMonitor.
# Upstream manifests are taken from the Go module cache and adjusted with kustomize overlays
# written here (images, pull policy, namespace, the flags kind's values set).
#
#   addons.sh apply
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/hostcluster/versions.sh
source "$here/versions.sh"
# shellcheck source=scripts/lib.sh
source "$here/../../scripts/lib.sh"

STATE=${HOSTCLUSTER_STATE:-/var/lib/perflab-hostcluster}
BIN=${BIN:-$("$here/build.sh")}
# shellcheck disable=SC2034  # read by name by render_template
DNS_IP=10.96.0.10 # kube-dns, as the kubelet's clusterDNS (hostcluster.sh)
PV_COUNT=6
MOD=$(go env GOMODCACHE)

k() { "$BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" "$@"; }

# render FILE: the manifest with ${NAME} replaced by these values
# shellcheck disable=SC2034  # the variables are read by name by render_template
render() {
  local COREDNS_IMAGE=perflab-host/coredns:$COREDNS_VERSION
  local PROMETHEUS_IMAGE=perflab-host/prometheus:$PROMETHEUS_VERSION
  local out
  out=$(mktemp)
  render_template "$1" "$out" COREDNS_IMAGE PROMETHEUS_IMAGE DNS_IP
  cat "$out"
  rm -f "$out"
}

# overlay NAME UPSTREAM_DIR NAMESPACE IMAGE_FROM IMAGE_TO [PATCH...]: a kustomization over an
# upstream folder; PATCH is "Kind/name=<json6902 ops>".
overlay() {
  local name=$1 upstream=$2 namespace=$3 from=$4 to=$5 dir
  shift 5
  dir=$STATE/addons/$name
  mkdir -p "$dir"
  {
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n'
    # kustomize takes no absolute resource paths; a relative one may leave the overlay's folder
    # with --load-restrictor LoadRestrictionsNone.
    printf 'namespace: %s\nresources: [%s]\n' "$namespace" "$(realpath --relative-to="$dir" "$upstream")"
    printf 'images:\n  - name: %s\n    newName: %s\n    newTag: "%s"\n' "$from" "${to%:*}" "${to##*:}"
    if (($#)); then
      printf 'patches:\n'
      local p
      for p in "$@"; do
        printf '  - target: {kind: %s, name: %s}\n    patch: |-\n      %s\n' \
          "${p%%/*}" "$(echo "${p#*/}" | cut -d= -f1)" "${p#*=}"
      done
    fi
  } >"$dir/kustomization.yaml"
  k kustomize --load-restrictor LoadRestrictionsNone "$dir"
}

never_pull='[{"op": "add", "path": "/spec/template/spec/containers/0/imagePullPolicy", "value": "Never"}]'

storage() {
  render "$here/addons/storage.yaml"
  local i dir
  for ((i = 0; i < PV_COUNT; i++)); do
    dir=$STATE/pv/pv$i
    mkdir -p "$dir"
    chmod 0777 "$dir"
    cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: perflab-host-pv$i}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: standard
  hostPath: {path: $dir, type: Directory}
EOF
  done
}

apply() {
  local start=$SECONDS op=$MOD/github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION
  [[ -d $op ]] || (cd / && go mod download "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION")
  k create namespace monitoring --dry-run=client -o yaml | k apply -f - >/dev/null
  log "addons: DNS, storage, metrics-server"
  render "$here/addons/coredns.yaml" | k apply -f - >/dev/null
  storage | k apply -f - >/dev/null
  overlay metrics-server "$MOD/sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION/manifests/base" kube-system \
    gcr.io/k8s-staging-metrics-server/metrics-server "perflab-host/metrics-server:$METRICS_SERVER_VERSION" \
    "Deployment/metrics-server=[{\"op\": \"add\", \"path\": \"/spec/template/spec/containers/0/args/-\", \"value\": \"--kubelet-insecure-tls\"}, {\"op\": \"replace\", \"path\": \"/spec/template/spec/containers/0/imagePullPolicy\", \"value\": \"Never\"}]" |
    k apply -f - >/dev/null
  log "addons: Prometheus Operator $PROM_OPERATOR_VERSION, Prometheus, kube-state-metrics $KSM_VERSION"
  # The CRDs are too large for a client-side apply's annotation.
  overlay prometheus-operator "$op" monitoring \
    quay.io/prometheus-operator/prometheus-operator "perflab-host/prometheus-operator:$PROM_OPERATOR_VERSION" \
    "Deployment/prometheus-operator=[{\"op\": \"replace\", \"path\": \"/spec/template/spec/containers/0/args\", \"value\": [\"--kubelet-service=kube-system/kubelet\", \"--kubelet-endpoints=true\", \"--kubelet-endpointslice=false\", \"--prometheus-config-reloader=perflab-host/prometheus-config-reloader:$PROM_OPERATOR_VERSION\"]}, {\"op\": \"add\", \"path\": \"/spec/template/spec/containers/0/imagePullPolicy\", \"value\": \"Never\"}]" |
    k apply --server-side --force-conflicts -f - >/dev/null
  overlay kube-state-metrics "$MOD/k8s.io/kube-state-metrics/v2@$KSM_VERSION/examples/standard" kube-system \
    registry.k8s.io/kube-state-metrics/kube-state-metrics "perflab-host/kube-state-metrics:$KSM_VERSION" \
    "Deployment/kube-state-metrics=$never_pull" | k apply -f - >/dev/null
  k wait --for=condition=Established crd/prometheuses.monitoring.coreos.com \
    crd/servicemonitors.monitoring.coreos.com --timeout=60s >/dev/null
  render "$here/addons/monitoring.yaml" | k apply -f - >/dev/null
  log "addons: waiting for them to be ready"
  k -n kube-system rollout status deploy/coredns --timeout=180s >/dev/null
  k -n kube-system rollout status deploy/metrics-server --timeout=180s >/dev/null
  k -n kube-system rollout status deploy/kube-state-metrics --timeout=180s >/dev/null
  k -n monitoring rollout status deploy/prometheus-operator --timeout=180s >/dev/null
  local deadline=$((SECONDS + 180))
  until k -n monitoring get statefulset prometheus-kps-prometheus >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "addons: the operator made no Prometheus StatefulSet"
    sleep 2
  done
  k -n monitoring rollout status statefulset/prometheus-kps-prometheus --timeout=180s >/dev/null
  until k get --raw /apis/metrics.k8s.io/v1beta1/nodes >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "addons: metrics-server serves no node metrics"
    sleep 2
  done
  log "addons: ready in $((SECONDS - start))s"
}

case "${1:-}" in
  apply) apply ;;
  *)
    echo "usage: $0 apply" >&2
    exit 2
    ;;
esac
