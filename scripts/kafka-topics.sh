#!/usr/bin/env bash
# Topic admin for the local Kafka, with the Kafka tools from the same jars as the broker:
#   scripts/kafka-topics.sh create NAME [PARTITIONS]   idempotent; PARTITIONS defaults to 6
#   scripts/kafka-topics.sh list
#   scripts/kafka-topics.sh describe [NAME]
#   scripts/kafka-topics.sh delete NAME
# KAFKA_BOOTSTRAP overrides the broker (default 127.0.0.1:$KAFKA_PORT).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

bootstrap=${KAFKA_BOOTSTRAP:-$PERFLAB_HOST:$KAFKA_PORT}
topics() { kafka_class org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" "$@"; }

case ${1:-} in
  create)
    [[ -n ${2:-} ]] || die "usage: $0 create NAME [PARTITIONS]"
    topics --create --if-not-exists --topic "$2" --partitions "${3:-6}" --replication-factor 1
    ;;
  list) topics --list ;;
  describe) topics --describe ${2:+--topic "$2"} ;;
  delete)
    [[ -n ${2:-} ]] || die "usage: $0 delete NAME"
    topics --delete --if-exists --topic "$2"
    ;;
  *)
    sed -n '2,7p' "$0" >&2
    exit 2
    ;;
esac
