#!/bin/bash
# Turns KAFKA_* variables into server.properties (the official image's convention), formats
# the log directory once with CLUSTER_ID, then runs the broker in the foreground.
set -euo pipefail
props=/opt/kafka/config/server.properties
: >"$props"
skip=" KAFKA_HEAP_OPTS KAFKA_OPTS KAFKA_JVM_PERFORMANCE_OPTS KAFKA_LOG4J_OPTS KAFKA_JMX_OPTS "
while IFS='=' read -r name value; do
  [[ $name == KAFKA_* && $skip != *" $name "* ]] || continue
  key=${name#KAFKA_}
  key=${key,,}
  key=${key//___/-}
  key=${key//__/@}
  key=${key//_/.}
  key=${key//@/_}
  printf '%s=%s\n' "$key" "$value" >>"$props"
done < <(env)
: "${CLUSTER_ID:?CLUSTER_ID must be set}"
java=(java -Djava.awt.headless=true -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties -cp '/opt/kafka/libs/*')
log_dir=$(sed -n 's/^log.dirs=//p' "$props")
if [[ ! -f ${log_dir:-/var/lib/kafka/data}/meta.properties ]]; then
  "${java[@]}" -Xmx256m kafka.tools.StorageTool format --cluster-id "$CLUSTER_ID" --config "$props" --ignore-formatted
fi
read -ra heap <<<"${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
exec "${java[@]}" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 kafka.Kafka "$props"
