#!/usr/bin/env bash
# Prints a directory holding the CustomResourceDefinitions of ServiceMonitor and
# PrometheusRule from the Prometheus Operator release that kube-prometheus-stack installs,
# so tests/deploy can validate the chart's monitoring resources against their real schemas.
# They ship in the operator's Go module; cached outside the clone, keyed by version.
#
#   deploy/scripts/fetch-crds.sh [VERSION]
set -euo pipefail
version=${1:-v0.93.1}  # kube-prometheus-stack 88.5.3's appVersion (deploy/scripts/up.sh)
module=github.com/prometheus-operator/prometheus-operator
cache_root=${PERFLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/perflab}
dir="$cache_root/prometheus-operator-crds-$version"
files=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)

have_all() { for f in "${files[@]}"; do [[ -s "$dir/$f" ]] || return 1; done; }

if ! have_all; then
  command -v go >/dev/null || { echo "fetch-crds: needs the Go toolchain (go mod download)" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  src=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$module@$version" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [[ -d "$src/example/prometheus-operator-crd" ]] || { echo "fetch-crds: no CRDs in $module@$version" >&2; exit 1; }
  mkdir -p "$dir"
  for f in "${files[@]}"; do cp "$src/example/prometheus-operator-crd/$f" "$dir/$f"; done
fi
echo "$dir"
