#!/usr/bin/env bash
# Builds every program the host cluster runs, from Go modules, into
#   $PERFLAB_CACHE/hostcluster-<versions hash>/bin
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl,
# coredns, metrics-server, operator, prometheus-config-reloader, kube-router,
# kube-state-metrics, prometheus) plus the
# sandbox ("pause") binary compiled from the Kubernetes module's own pause.c.
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces 31 staging modules by local
# folders), and prometheus-operator replaces two of its own submodules, so one wrapper module
# requires them all and pins those modules to their published versions. One module means one
# set of Kubernetes libraries, compiled once for eleven of the thirteen programs.
# metrics-server and Prometheus are built inside their own modules, with their own go.sum:
# metrics-server's code needs an older Prometheus library than the operator's, and
# Prometheus needs a newer one.
# Idempotent: prints the bin folder and does nothing else when it is complete.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/hostcluster/versions.sh
source "$here/versions.sh"
# shellcheck source=scripts/lib.sh
source "$here/../../scripts/lib.sh"

PROGRAMS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
  coredns metrics-server operator prometheus-config-reloader kube-router kube-state-metrics
  prometheus)
# Built in their own module (MODULE@VERSION PACKAGE-IN-IT) instead of the wrapper.
declare -A OWN_MODULE=(
  [metrics-server]="sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION ./cmd/metrics-server"
  [prometheus]="github.com/prometheus/prometheus@$PROMETHEUS_VERSION ./cmd/prometheus"
)
declare -A PACKAGE=(
  [coredns]=perflab.local/hostcluster/cmd/coredns # deploy/hostcluster/coredns/main.go
  [metrics-server]=sigs.k8s.io/metrics-server/cmd/metrics-server
  [operator]=github.com/prometheus-operator/prometheus-operator/cmd/operator
  [prometheus-config-reloader]=github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader
  [kube-router]=github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
  [kube-state-metrics]=k8s.io/kube-state-metrics/v2
  [prometheus]=github.com/prometheus/prometheus/cmd/prometheus
)
# Prometheus with Kubernetes and DNS service discovery only (the operator's configuration
# uses Kubernetes'): its plugins package imports two dozen cloud providers' discovery (among
# them google.golang.org/api/compute, one of the largest Go packages there is); a copy that
# imports these two leaves 1,197 packages to compile instead of 1,377. File, HTTP and static
# discovery stay (the package's minimum.go).
PROMETHEUS_SD=(kubernetes dns)
RECIPE=2
for p in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  PACKAGE[$p]=k8s.io/kubernetes/cmd/$p
done

build_dir() {
  local key
  # RECIPE: bump it when a change here changes what a program is built with.
  key=$(printf '%s\n' "$KUBE_VERSION" "$COREDNS_VERSION" "$METRICS_SERVER_VERSION" \
    "$PROM_OPERATOR_VERSION" "$KUBE_ROUTER_VERSION" "$KSM_VERSION" "$PROMETHEUS_VERSION" \
    "$(go env GOVERSION)" "$RECIPE" | sha256sum | cut -c1-10)
  echo "$PERFLAB_CACHE/hostcluster-$KUBE_VERSION-$key"
}

write_module() { # DIR
  local dir=$1 kmod staging_version=v0.${KUBE_VERSION#v1.}
  kmod=$(cd / && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [[ -f $kmod ]] || die "k8s.io/kubernetes@$KUBE_VERSION: the module proxy did not serve its go.mod"
  {
    printf 'module perflab.local/hostcluster\n\ngo 1.24.0\n\nrequire (\n'
    printf '\tk8s.io/kubernetes %s\n' "$KUBE_VERSION"
    printf '\tgithub.com/coredns/coredns %s\n' "$COREDNS_VERSION"
    printf '\tgithub.com/prometheus-operator/prometheus-operator %s\n' "$PROM_OPERATOR_VERSION"
    printf '\tgithub.com/cloudnativelabs/kube-router/v2 %s\n' "$KUBE_ROUTER_VERSION"
    printf '\tk8s.io/kube-state-metrics/v2 %s\n)\n\nreplace (\n' "$KSM_VERSION"
    # Kubernetes' staging modules, at the version published with this release.
    awk -v v="$staging_version" '$2 == "=>" && $3 ~ /^\.\/staging/ {print "\t" $1 " => " $1 " " v}' "$kmod"
    for sub in pkg/apis/monitoring pkg/client; do
      printf '\tgithub.com/prometheus-operator/prometheus-operator/%s => github.com/prometheus-operator/prometheus-operator/%s %s\n' \
        "$sub" "$sub" "$PROM_OPERATOR_VERSION"
    done
    printf ')\n'
  } >"$dir/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for p in "${PROGRAMS[@]}"; do
      [[ -n ${OWN_MODULE[$p]:-} || ${PACKAGE[$p]} == perflab.local/* ]] ||
        printf '\t_ "%s"\n' "${PACKAGE[$p]}"
    done
    printf ')\n'
  } >"$dir/tools.go"
  mkdir -p "$dir/cmd/coredns"
  cp "$here/coredns/main.go" "$dir/cmd/coredns/main.go"
}

# prometheus_source MODULE_DIR WORK_DIR: a writable copy of the Prometheus module whose
# plugins/plugins.go imports only PROMETHEUS_SD; prints its path. (`go build -overlay` would
# be neater, but it refuses to replace files in the module cache.)
prometheus_source() {
  local module=$1 copy=$2/prometheus sd
  rm -rf "$copy"
  cp -r "$module" "$copy"
  chmod -R u+w "$copy"
  {
    printf '// Generated by deploy/hostcluster/build.sh: service discovery for the host cluster.\n'
    printf 'package plugins\n\nimport (\n'
    for sd in "${PROMETHEUS_SD[@]}"; do
      printf '\t_ "github.com/prometheus/prometheus/discovery/%s"\n' "$sd"
    done
    printf ')\n'
  } >"$copy/plugins/plugins.go"
  echo "$copy"
}

# go_build DIR LOG ARGS...: `go build ARGS` in DIR, a progress line every 30 s.
go_build() {
  local dir=$1 build_log=$2 pid waited=0
  shift 2
  (cd "$dir" && go build -v -trimpath "$@") >>"$build_log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    ((++waited % 30)) ||
      log "hostcluster: still building after ${waited}s, $(grep -vc '^go: ' "$build_log" || true) packages compiled"
  done
  wait "$pid" || {
    tail -n 30 "$build_log" >&2
    die "hostcluster: build failed; see $build_log"
  }
}

main() {
  command -v go >/dev/null || die "the go command is needed to build the host cluster"
  local dir bin missing=() p start=$SECONDS
  dir=$(build_dir)
  bin=$dir/bin
  for p in "${PROGRAMS[@]}" pause; do [[ -x $bin/$p ]] || missing+=("$p"); done
  if ((${#missing[@]} == 0)); then
    echo "$bin"
    return 0
  fi
  mkdir -p "$dir/src" "$bin"
  # One build at a time (make test starts one in the background): a second waits, then finds
  # everything built.
  exec 9>"$dir/.lock"
  if ! flock -n 9; then
    log "hostcluster: another build of $dir is running (make test's background build); waiting for it"
    until flock -w 60 9; do
      log "hostcluster: still waiting for the other build, $(grep -vc '^go: ' "$dir/build.log" || true) packages compiled"
    done
    main "$@"
    return
  fi
  log "hostcluster: building ${missing[*]} (cold: about 25 minutes on 2 idle cores, 47 CPU-minutes; log: $dir/build.log)"
  write_module "$dir/src"
  (cd "$dir/src" && GOFLAGS=-mod=mod go mod tidy) >"$dir/build.log" 2>&1 || {
    tail -n 30 "$dir/build.log" >&2
    die "hostcluster: go mod tidy failed; see $dir/build.log"
  }
  local pkgs=() ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
  for p in "${missing[@]}"; do
    [[ $p == pause || -n ${OWN_MODULE[$p]:-} ]] || pkgs+=("${PACKAGE[$p]}")
  done
  if ((${#pkgs[@]})); then
    go_build "$dir/src" "$dir/build.log" -ldflags "$ldflags" -o "$bin/" "${pkgs[@]}"
  fi
  for p in "${!OWN_MODULE[@]}"; do
    [[ ! -x $bin/$p ]] || continue
    local module package src
    read -r module package <<<"${OWN_MODULE[$p]}"
    src=$(cd / && go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ $p != prometheus ]] || src=$(prometheus_source "$src" "$dir/src")
    log "hostcluster: building $p in its own module $module"
    go_build "$src" "$dir/build.log" -ldflags "-s -w" -o "$bin/$p" "$package"
  done
  if [[ ! -x $bin/pause ]]; then
    command -v gcc >/dev/null || die "hostcluster: gcc is needed for the pause binary"
    gcc -Os -static -o "$bin/pause" \
      "$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBE_VERSION/build/pause/linux/pause.c"
  fi
  for p in "${PROGRAMS[@]}" pause; do [[ -x $bin/$p ]] || die "hostcluster: $p was not built"; done
  log "hostcluster: built in $((SECONDS - start))s into $bin"
  echo "$bin"
}

main "$@"
