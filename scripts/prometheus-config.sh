#!/usr/bin/env bash
# Renders scripts/prometheus/prometheus.yml.tmpl to OUT (default: stdout).
# Scrape targets are host:port pairs taken from the environment, so a test can point a
# second Prometheus at its own services:
#   PROM_TARGET_GATEWAY (127.0.0.1:18080)   PROM_TARGET_ORDERS   (127.0.0.1:19101)
#   PROM_TARGET_PAYMENTS (127.0.0.1:19102)  PROM_TARGET_WORKER   (127.0.0.1:19103)
#   PROM_TARGET_LOADGEN (127.0.0.1:19105, the Locust runner's exporter)
#   PROM_SELF_TARGET (127.0.0.1:$PROMETHEUS_PORT)   PROM_SCRAPE_INTERVAL (5s)
#   PROM_RULES_GLOB (<repo>/deploy/helm/perflab/rules/*.yml; matching no file is fine)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

out=${1:--}
PROM_TARGET_GATEWAY=${PROM_TARGET_GATEWAY:-127.0.0.1:18080}
PROM_TARGET_ORDERS=${PROM_TARGET_ORDERS:-127.0.0.1:19101}
PROM_TARGET_PAYMENTS=${PROM_TARGET_PAYMENTS:-127.0.0.1:19102}
PROM_TARGET_WORKER=${PROM_TARGET_WORKER:-127.0.0.1:19103}
PROM_TARGET_LOADGEN=${PROM_TARGET_LOADGEN:-127.0.0.1:19105}
PROM_SELF_TARGET=${PROM_SELF_TARGET:-$PERFLAB_HOST:$PROMETHEUS_PORT}
PROM_SCRAPE_INTERVAL=${PROM_SCRAPE_INTERVAL:-5s}
PROM_RULES_GLOB=${PROM_RULES_GLOB:-$PERFLAB_ROOT/deploy/helm/perflab/rules/*.yml}

[[ $out == - ]] && out=/dev/stdout
render_template "$SCRIPTS_DIR/prometheus/prometheus.yml.tmpl" "$out" \
  PROM_TARGET_GATEWAY PROM_TARGET_ORDERS PROM_TARGET_PAYMENTS PROM_TARGET_WORKER \
  PROM_TARGET_LOADGEN PROM_SELF_TARGET PROM_SCRAPE_INTERVAL PROM_RULES_GLOB
