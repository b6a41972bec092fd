#!/usr/bin/env bash
# Runs Prometheus in the foreground (exec) with the lab's flags, so the local stack and
# tests that need a second, differently configured Prometheus start it the same way:
#   scripts/prometheus-run.sh [--config FILE] [--port PORT] [--data DIR] [--retention 2d]
# Without --config, the config is rendered by scripts/prometheus-config.sh (see there for
# the PROM_* variables) into DIR/../prometheus.yml. Listens on 127.0.0.1 only.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

config='' port=$PROMETHEUS_PORT data=$PERFLAB_DATA/prometheus/data retention=$PROMETHEUS_RETENTION
while (($#)); do
  case $1 in
    --config) config=$2 ;;
    --port) port=$2 ;;
    --data) data=$2 ;;
    --retention) retention=$2 ;;
    -h | --help)
      sed -n '2,6p' "$0"
      exit 0
      ;;
    *) die "prometheus-run.sh: unknown argument $1" ;;
  esac
  shift 2
done

mkdir -p "$data"
if [[ -z $config ]]; then
  config=$(dirname "$data")/prometheus.yml
  PROM_SELF_TARGET=${PROM_SELF_TARGET:-$PERFLAB_HOST:$port} "$SCRIPTS_DIR/prometheus-config.sh" "$config"
fi
promtool check config "$config" >&2 || die "invalid Prometheus config $config"

exec prometheus \
  --config.file="$config" \
  --web.listen-address="$PERFLAB_HOST:$port" \
  --storage.tsdb.path="$data" \
  --storage.tsdb.retention.time="$retention" \
  --web.enable-lifecycle \
  --enable-feature=exemplar-storage
