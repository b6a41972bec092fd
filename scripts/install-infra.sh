#!/usr/bin/env bash
# Installs what scripts/local-infra.sh runs, as plain programs (no containers):
#   - PostgreSQL, Redis, Prometheus (+ promtool) from Debian's packages;
#   - Apache Kafka (KRaft) as jars from Maven Central into $PERFLAB_CACHE/kafka-<version>/libs;
#   - Jaeger v2 built from its Go module into $PERFLAB_CACHE/jaeger-<version>/jaeger.
# Idempotent: when everything is present it only checks, in about a second.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

install_apt_packages() {
  local missing=()
  pg_bindir >/dev/null || missing+=(postgresql)
  command -v psql >/dev/null || missing+=(postgresql-client)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v curl >/dev/null || missing+=(curl)
  command -v setsid >/dev/null || missing+=(util-linux)
  command -v ps >/dev/null || missing+=(procps)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v shellcheck >/dev/null || missing+=(shellcheck) # the tests lint every script
  ((${#missing[@]})) || return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "apt: installing ${missing[*]}"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  # The packages would start their own system services (postgres on 5432, redis on 6379,
  # prometheus on 9090). We run our own instances, so keep the packages from starting
  # anything, unless the machine already has a policy in place.
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    made_policy=1
  fi
  local rc=0
  "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install \
    -y -qq --no-install-recommends "${missing[@]}" || rc=$?
  [[ -z $made_policy ]] || "${sudo[@]}" rm -f "$policy"
  ((rc == 0)) || die "apt-get install failed (exit $rc)"
}

install_kafka() {
  if [[ -f $KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar && -f $KAFKA_LIBS/.complete ]]; then
    return 0
  fi
  log "kafka $KAFKA_VERSION: fetching jars from Maven Central into $KAFKA_LIBS"
  local tmp=$KAFKA_LIBS.tmp.$$
  rm -rf "$tmp"
  mkdir -p "$tmp"
  local mvn_log=$PERFLAB_CACHE/kafka-$KAFKA_VERSION/mvn.log
  mvn -B -f "$SCRIPTS_DIR/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" \
    -Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION" \
    -Dslf4j.version="$SLF4J_VERSION" >"$mvn_log" 2>&1 || {
    tail -n 30 "$mvn_log" >&2
    die "kafka: maven failed; see $mvn_log"
  }
  [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka: maven did not produce kafka_2.13"
  touch "$tmp/.complete"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  log "kafka $KAFKA_VERSION: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars ready"
}

install_jaeger() {
  [[ -x $JAEGER_BIN ]] && return 0
  command -v go >/dev/null || die "jaeger: the go command is needed to build it"
  local module=github.com/jaegertracing/jaeger src tmp build_log pid
  log "jaeger $JAEGER_VERSION: downloading the module"
  # `go install pkg@version` refuses this module (its go.mod has replace directives), so
  # build inside the downloaded module, where its go.mod and go.sum apply as upstream's do.
  src=$(cd / && GOFLAGS=-mod=mod go mod download -json "$module@$JAEGER_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $src/cmd/jaeger ]] || die "jaeger: module $module@$JAEGER_VERSION has no cmd/jaeger"
  mkdir -p "$(dirname "$JAEGER_BIN")"
  tmp=$JAEGER_BIN.tmp.$$
  build_log=$(dirname "$JAEGER_BIN")/build.log
  log "jaeger $JAEGER_VERSION: building (several minutes on 2 cores; log: $build_log)"
  (cd "$src" && go build -v -trimpath -buildvcs=false -o "$tmp" \
    -ldflags "-s -w -X $module/internal/version.latestVersion=$JAEGER_VERSION" \
    ./cmd/jaeger) >"$build_log" 2>&1 &
  pid=$!
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    ((++waited % 20)) ||
      log "jaeger: still building after ${waited}s, $(grep -vc '^go: ' "$build_log" || true) packages compiled"
  done
  wait "$pid" || {
    tail -n 30 "$build_log" >&2
    die "jaeger: build failed; see $build_log"
  }
  mv "$tmp" "$JAEGER_BIN"
  log "jaeger $JAEGER_VERSION: built $JAEGER_BIN"
}

main() {
  local start=$SECONDS
  install_apt_packages
  install_kafka
  install_jaeger
  log "infra installed in $((SECONDS - start))s: postgres $(pg_bindir), kafka $KAFKA_VERSION," \
    "jaeger $JAEGER_VERSION, $(prometheus --version 2>&1 | head -n 1)"
}

main "$@"
