#!/usr/bin/env bash
# Starts, stops or shows the four perflab services as local processes (see
# perflab.dev.processes). The infrastructure must be up: scripts/local-infra.sh up.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
cmd=${1:-status}
# One `up` or `down` at a time: two racing `up`s would start the services twice.
mkdir -p "$RUN_DIR"
exec 9>"$RUN_DIR/services.lock"
flock 9
.venv/bin/python -m perflab.dev.processes "$cmd" --data-dir "$PERFLAB_DATA"
if [ "$cmd" = up ]; then
  cat >&2 <<URLS

perflab is running locally:
  API (gateway)     http://127.0.0.1:18080/api/products      docs: http://127.0.0.1:18080/docs
  Prometheus        http://127.0.0.1:${PROMETHEUS_PORT}
  Jaeger (HTTP API) http://127.0.0.1:${JAEGER_UI_PORT}/api/services
  orders gRPC       127.0.0.1:15051    metrics http://127.0.0.1:19101/metrics
  payments gRPC     127.0.0.1:15052    metrics http://127.0.0.1:19102/metrics
  worker            metrics http://127.0.0.1:19103/metrics
  logs              $PERFLAB_DATA/logs/

Try:  curl -s -XPOST localhost:18080/api/orders -H 'content-type: application/json' \\
        -d '{"customer_id":"me","items":[{"product_id":1,"quantity":2}]}'
Stop: make local-down
URLS
fi
