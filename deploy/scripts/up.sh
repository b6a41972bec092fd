#!/usr/bin/env bash
# `make up`: the whole lab on a local cluster. Idempotent: a second run reuses the cluster,
# Docker's build cache and the images already loaded, and upgrades the releases in place (no
# pod restarts when nothing changed).
#
# PROVIDER=kind (default): a kind cluster in Docker. PROVIDER=host: the single-node cluster
# deploy/hostcluster/ builds and runs on this Linux host (root; no registry, no Docker
# needed); its images are built by the cluster's own dockerd on a Debian base and imported
# into its containerd, and the monitoring add-ons come with the cluster.
#
# Needs KUBECTL and HELM (paths to the pinned binaries; deploy/cluster.mk passes them), and
# KIND for PROVIDER=kind.
# Optional: CLUSTER (perflab), NAMESPACE (perflab), VALUES (an extra values file for the chart),
# LOCUST=1 (build the Locust image and deploy master + workers).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${KUBECTL:?path to kubectl}" "${HELM:?path to helm}"
provider=${PROVIDER:-kind}
cluster=${CLUSTER:-perflab}
namespace=${NAMESPACE:-perflab}
release=perflab
monitoring=monitoring
# Pinned charts of the components that are not ours (values files in deploy/monitoring/).
KPS_CHART_VERSION=${KPS_CHART_VERSION:-88.5.3}
METRICS_SERVER_CHART_VERSION=${METRICS_SERVER_CHART_VERSION:-3.13.1}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

chart_args=()
case "$provider" in
  kind)
    : "${KIND:?path to kind}"
    context="kind-$cluster"
    deploy/scripts/check-docker.sh
    step "kind cluster '$cluster'"
    if "$KIND" get clusters 2>/dev/null | grep -qx "$cluster"; then
      echo "exists; reusing it"
      "$KIND" export kubeconfig --name "$cluster" >/dev/null
    else
      "$KIND" create cluster --name "$cluster" --config deploy/kind/cluster.yaml --wait 180s
    fi
    docker_build() { DOCKER_BUILDKIT=1 docker build "$@"; }
    load_image() { "$KIND" load docker-image "$1" --name "$cluster"; }
    ;;
  host)
    context=perflab-host
    hostcluster=deploy/hostcluster/hostcluster.sh
    export KUBECONFIG
    KUBECONFIG=$("$hostcluster" kubeconfig)
    step "host cluster"
    if "$hostcluster" running; then
      echo "running; reusing it"
    else
      "$hostcluster" start
    fi
    images=deploy/hostcluster/images.sh
    docker_build() {
      DOCKER_BUILDKIT=1 "$images" docker build --network host \
        --build-arg PYTHON_IMAGE=perflab-host/python:3.11 "$@"
    }
    docker() { "$images" docker "$@"; }
    load_image() { "$images" load "$1"; }
    chart_args+=(--values deploy/hostcluster/values.yaml)
    ;;
  *)
    echo "PROVIDER must be kind or host, not '$provider'" >&2
    exit 2
    ;;
esac
k() { "$KUBECTL" --context "$context" "$@"; }
h() { "$HELM" --kube-context "$context" "$@"; }

# Builds an image, tags it with its image id (so an unchanged build keeps its tag and Helm
# rolls nothing) and loads it into the cluster. Prints the tag.
build_and_load() { # IMAGE DOCKERFILE
  local image=$1 dockerfile=$2 id tag
  docker_build --file "$dockerfile" --tag "$image:dev" . >&2
  id=$(docker image inspect --format '{{.Id}}' "$image:dev")
  tag=${id#sha256:}
  tag=${tag:0:12}
  docker tag "$image:dev" "$image:$tag"
  load_image "$image:$tag" >&2
  echo "$tag"
}

step "images"
for svc in gateway orders payments worker; do
  echo "-- perflab/$svc"
  tag=$(build_and_load "perflab/$svc" "services/$svc/Dockerfile")
  chart_args+=(--set "services.$svc.image.repository=perflab/$svc" --set "services.$svc.image.tag=$tag")
done
# py-spy for `make profile TARGET=kind`, run as an ephemeral container beside a service's (the
# services' images stay without it); tagged with the version constraints.txt pins, the tag
# scripts/flamegraph.py asks for.
pyspy=$(sed -n 's/^py-spy==//p' constraints.txt)
profiler=perflab/profiler:py-spy-${pyspy:?constraints.txt pins no py-spy}
echo "-- $profiler"
docker_build --file deploy/docker/profiler.Dockerfile --tag "$profiler" . >&2
load_image "$profiler" >&2
if [[ "${LOCUST:-0}" == 1 ]]; then
  [[ -d loadtests ]] || { echo "LOCUST=1 needs the loadtests/ directory" >&2; exit 1; }
  echo "-- perflab/locust"
  tag=$(build_and_load perflab/locust deploy/docker/locust.Dockerfile)
  chart_args+=(--set locust.enabled=true --set "locust.image=perflab/locust:$tag")
fi
if [[ -n "${VALUES:-}" ]]; then chart_args+=(--values "$VALUES"); fi

if [[ $provider == kind ]]; then
  step "metrics-server $METRICS_SERVER_CHART_VERSION (HPAs need it)"
  h upgrade --install metrics-server metrics-server \
    --repo https://kubernetes-sigs.github.io/metrics-server/ --version "$METRICS_SERVER_CHART_VERSION" \
    --namespace kube-system --values deploy/monitoring/metrics-server.values.yaml --wait --timeout 5m

  step "kube-prometheus-stack $KPS_CHART_VERSION (Prometheus, Grafana, kube-state-metrics)"
  h upgrade --install kps kube-prometheus-stack \
    --repo https://prometheus-community.github.io/helm-charts --version "$KPS_CHART_VERSION" \
    --namespace "$monitoring" --create-namespace \
    --values deploy/monitoring/kube-prometheus-stack.values.yaml --wait --timeout 10m
else
  step "monitoring: installed with the host cluster (metrics-server, Prometheus Operator, kube-state-metrics; no Grafana)"
fi

# What a failed install needs to be understood: the pods that are not Ready, their events
# and the last lines of their containers' logs.
explain_failure() {
  echo "perflab: the install did not complete; pods that are not Ready:" >&2
  local pod
  k -n "$namespace" get pods -o wide >&2 || true
  for pod in $(k -n "$namespace" get pods -o jsonpath='{range .items[?(@.status.phase!="Succeeded")]}{.metadata.name}{" "}{range .status.conditions[?(@.type=="Ready")]}{.status}{end}{"\n"}{end}' |
    awk '$2 != "True" {print $1}'); do
    printf '\n--- %s: events\n' "$pod" >&2
    k -n "$namespace" get events --field-selector "involvedObject.name=$pod" \
      --sort-by=.lastTimestamp >&2 || true
    printf -- '--- %s: logs (last 40 lines of each container)\n' "$pod" >&2
    k -n "$namespace" logs "$pod" --all-containers --tail=40 --prefix >&2 || true
  done
}

step "perflab chart"
# No --wait: Helm runs the post-install hooks (topics, migrations, seed) right after creating
# the resources and waits for them; the pods are waited for below.
h upgrade --install "$release" deploy/helm/perflab \
  --namespace "$namespace" --create-namespace "${chart_args[@]}" --timeout 15m || {
  explain_failure
  exit 1
}
for workload in $(k -n "$namespace" get deployment,statefulset \
  -l "app.kubernetes.io/instance=$release" -o name); do
  k -n "$namespace" rollout status "$workload" --timeout 5m || {
    explain_failure
    exit 1
  }
done

step "perflab is up"
echo "  gateway     http://localhost:8080        (API docs: http://localhost:8080/docs)"
if [[ $provider == kind ]]; then
  password=$(k -n "$monitoring" get secret kps-grafana -o jsonpath='{.data.admin-password}' | base64 --decode)
  user=$(k -n "$monitoring" get secret kps-grafana -o jsonpath='{.data.admin-user}' | base64 --decode)
  echo "  Grafana     http://localhost:3000        user: $user  password: $password"
else
  echo "  Grafana     none with PROVIDER=host (no Grafana server can be built here)"
fi
cat <<EOF
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
