#!/usr/bin/env bash
# `make up`: the whole lab on a local kind cluster. Idempotent: a second run reuses the
# cluster, Docker's build cache and the images already loaded, and upgrades the releases in
# place (no pod restarts when nothing changed).
#
# Needs KIND, KUBECTL and HELM (paths to the pinned binaries; deploy/cluster.mk passes them).
# Optional: CLUSTER (perflab), NAMESPACE (perflab), VALUES (an extra values file for the chart),
# LOCUST=1 (build the Locust image and deploy master + workers).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${KIND:?path to kind}" "${KUBECTL:?path to kubectl}" "${HELM:?path to helm}"
cluster=${CLUSTER:-perflab}
namespace=${NAMESPACE:-perflab}
context="kind-$cluster"
release=perflab
monitoring=monitoring
# Pinned charts of the components that are not ours (values files in deploy/monitoring/).
KPS_CHART_VERSION=${KPS_CHART_VERSION:-88.5.3}
METRICS_SERVER_CHART_VERSION=${METRICS_SERVER_CHART_VERSION:-3.13.1}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
k() { "$KUBECTL" --context "$context" "$@"; }
h() { "$HELM" --kube-context "$context" "$@"; }

deploy/scripts/check-docker.sh

step "kind cluster '$cluster'"
if "$KIND" get clusters 2>/dev/null | grep -qx "$cluster"; then
  echo "exists; reusing it"
  "$KIND" export kubeconfig --name "$cluster" >/dev/null
else
  "$KIND" create cluster --name "$cluster" --config deploy/kind/cluster.yaml --wait 180s
fi

# Builds an image, tags it with its image id (so an unchanged build keeps its tag and Helm
# rolls nothing) and loads it into the cluster (kind skips images the node already has).
# Prints the tag.
build_and_load() { # IMAGE DOCKERFILE
  local image=$1 dockerfile=$2 id tag
  DOCKER_BUILDKIT=1 docker build --file "$dockerfile" --tag "$image:dev" . >&2
  id=$(docker image inspect --format '{{.Id}}' "$image:dev")
  tag=${id#sha256:}
  tag=${tag:0:12}
  docker tag "$image:dev" "$image:$tag"
  "$KIND" load docker-image "$image:$tag" --name "$cluster" >&2
  echo "$tag"
}

step "images"
chart_args=()
for svc in gateway orders payments worker; do
  echo "-- perflab/$svc"
  tag=$(build_and_load "perflab/$svc" "services/$svc/Dockerfile")
  chart_args+=(--set "services.$svc.image.repository=perflab/$svc" --set "services.$svc.image.tag=$tag")
done
if [[ "${LOCUST:-0}" == 1 ]]; then
  [[ -d loadtests ]] || { echo "LOCUST=1 needs the loadtests/ directory" >&2; exit 1; }
  echo "-- perflab/locust"
  tag=$(build_and_load perflab/locust deploy/docker/locust.Dockerfile)
  chart_args+=(--set locust.enabled=true --set "locust.image=perflab/locust:$tag")
fi
if [[ -n "${VALUES:-}" ]]; then chart_args+=(--values "$VALUES"); fi

step "metrics-server $METRICS_SERVER_CHART_VERSION (HPAs need it)"
h upgrade --install metrics-server metrics-server \
  --repo https://kubernetes-sigs.github.io/metrics-server/ --version "$METRICS_SERVER_CHART_VERSION" \
  --namespace kube-system --values deploy/monitoring/metrics-server.values.yaml --wait --timeout 5m

step "kube-prometheus-stack $KPS_CHART_VERSION (Prometheus, Grafana, kube-state-metrics)"
h upgrade --install kps kube-prometheus-stack \
  --repo https://prometheus-community.github.io/helm-charts --version "$KPS_CHART_VERSION" \
  --namespace "$monitoring" --create-namespace \
  --values deploy/monitoring/kube-prometheus-stack.values.yaml --wait --timeout 10m

step "perflab chart"
# No --wait: Helm runs the post-install hooks (topics, migrations, seed) right after creating
# the resources and waits for them; the pods are waited for below.
h upgrade --install "$release" deploy/helm/perflab \
  --namespace "$namespace" --create-namespace "${chart_args[@]}" --timeout 15m
for workload in $(k -n "$namespace" get deployment,statefulset \
  -l "app.kubernetes.io/instance=$release" -o name); do
  k -n "$namespace" rollout status "$workload" --timeout 5m
done

step "perflab is up"
password=$(k -n "$monitoring" get secret kps-grafana -o jsonpath='{.data.admin-password}' | base64 --decode)
user=$(k -n "$monitoring" get secret kps-grafana -o jsonpath='{.data.admin-user}' | base64 --decode)
cat <<EOF
  gateway     http://localhost:8080        (API docs: http://localhost:8080/docs)
  Grafana     http://localhost:3000        user: $user  password: $password
  Jaeger      http://localhost:16686
  Prometheus  http://localhost:9090
EOF
if [[ "${LOCUST:-0}" == 1 ]]; then
  echo "  Locust      http://localhost:8089"
else
  echo "  Locust      off (make up LOCUST=1 deploys it at http://localhost:8089)"
fi
echo
echo "Next: make smoke   (kubectl context: $context, namespace: $namespace)"
