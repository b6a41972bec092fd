#!/usr/bin/env bash
# Copies the Grafana dashboards (dashboards/*.json) and Prometheus rules
# (dashboards/rules/*.yml|yaml) into the chart, which cannot read files outside its own
# directory. The copies are committed so the chart installs from a plain checkout;
# tests/deploy/test_chart_assets.py fails when they drift from dashboards/.
# With --check it changes nothing and exits 1 when a copy is stale.
set -euo pipefail
cd "$(dirname "$0")/../.."
check=0
[[ "${1:-}" == --check ]] && check=1
stale=0

sync() { # SOURCE-DIR PATTERN... -> TARGET-DIR (last argument)
  local target=${*: -1} source=$1
  local -a patterns=("${@:2:$#-2}")
  local -A wanted=()
  local file name
  mkdir -p "$target"
  shopt -s nullglob
  for pattern in "${patterns[@]}"; do
    for file in "$source"/$pattern; do
      name=$(basename "$file")
      wanted[$name]=1
      if ! cmp -s "$file" "$target/$name"; then
        stale=1
        if ((check)); then echo "stale: $target/$name (differs from $file)"; else cp "$file" "$target/$name"; fi
      fi
    done
  done
  for pattern in "${patterns[@]}"; do
    for file in "$target"/$pattern; do
      name=$(basename "$file")
      if [[ -z "${wanted[$name]:-}" ]]; then
        stale=1
        if ((check)); then echo "stale: $file (no longer in $source)"; else rm -f "$file"; fi
      fi
    done
  done
  shopt -u nullglob
}

sync dashboards '*.json' deploy/helm/perflab/dashboards
sync dashboards/rules '*.yml' '*.yaml' deploy/helm/perflab/rules

if ((check && stale)); then
  echo "the chart's copies are stale: run 'make chart-assets'"
  exit 1
fi
