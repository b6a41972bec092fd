#!/usr/bin/env bash
# Images for the host cluster, built without a registry by the cluster's own dockerd and
# imported into its containerd (pods use them with imagePullPolicy: Never).
#
#   images.sh build            base images, infrastructure and add-on images
#   images.sh load [IMAGE...]  import the images (default: every one the cluster needs) into containerd
#   images.sh docker ARGS...   run Debian's docker client against the cluster's dockerd
#
# Bases: a debootstrap'd Debian bookworm (minbase) imported as perflab-host/debian, and
# perflab-host/python on top of it (the services' PYTHON_IMAGE here). Infrastructure from
# Debian packages (PostgreSQL, Redis), the cached Kafka jars and Jaeger binary; the add-ons
# and Prometheus from the programs build.sh compiled. Tags are fixed (the values overlay names
# them); Docker's layer cache makes an unchanged rebuild take seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/hostcluster/versions.sh
source "$here/versions.sh"
# shellcheck source=scripts/lib.sh
source "$here/../../scripts/lib.sh"

STATE=${HOSTCLUSTER_STATE:-/var/lib/perflab-hostcluster}
CTRD_SOCK=$STATE/containerd/containerd.sock
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

BASE=perflab-host/debian:bookworm
PYTHON=perflab-host/python:3.11
# Images of the infrastructure and add-ons, by the name the manifests and values use.
declare -A PROGRAM_IMAGE=(
  [coredns]=perflab-host/coredns:$COREDNS_VERSION
  [metrics-server]=perflab-host/metrics-server:$METRICS_SERVER_VERSION
  [operator]=perflab-host/prometheus-operator:$PROM_OPERATOR_VERSION
  [prometheus-config-reloader]=perflab-host/prometheus-config-reloader:$PROM_OPERATOR_VERSION
  [kube-state-metrics]=perflab-host/kube-state-metrics:$KSM_VERSION
  [prometheus]=perflab-host/prometheus:$PROMETHEUS_VERSION
)
INFRA_IMAGES=(perflab-host/postgres:15 perflab-host/redis:7.0 "perflab-host/kafka:$KAFKA_VERSION"
  "perflab-host/jaeger:$JAEGER_VERSION")

docker() { /usr/bin/docker -H "unix://$STATE/docker/docker.sock" "$@"; }
has_image() { docker image inspect "$1" >/dev/null 2>&1; }

# docker build with BuildKit, quiet unless it fails.
build() { # TAG CONTEXT DOCKERFILE [ARGS...]
  local tag=$1 context=$2 file=$3 out
  shift 3
  out=$(DOCKER_BUILDKIT=1 docker build --network host --build-arg "BASE=$BASE" \
    --file "$file" --tag "$tag" "$@" "$context" 2>&1) || {
    printf '%s\n' "$out" | tail -n 30 >&2
    die "images: building $tag failed"
  }
}

base_images() {
  if ! has_image "$BASE"; then
    command -v debootstrap >/dev/null || die "images: debootstrap is missing; run hostcluster.sh install"
    local root
    root=$(mktemp -d)
    log "images: debootstrap bookworm (minbase) for $BASE"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$DEBIAN_MIRROR" \
      >"$STATE/logs/debootstrap.log" 2>&1 || {
      tail -n 20 "$STATE/logs/debootstrap.log" >&2
      rm -rf "$root"
      die "images: debootstrap failed"
    }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import - "$BASE" >/dev/null
    rm -rf "$root"
  fi
  local ctx
  ctx=$(mktemp -d)
  # The CA bundle pip on the host trusts (a proxy's CA may be in it).
  cp "$(python3 -c 'import ssl; print(ssl.get_default_verify_paths().openssl_cafile)' 2>/dev/null ||
    echo /etc/ssl/certs/ca-certificates.crt)" "$ctx/host-ca-certificates.crt"
  build "$PYTHON" "$ctx" "$here/images/python.Dockerfile"
  rm -rf "$ctx"
  # The sandbox ("pause") image: one static binary.
  ctx=$(mktemp -d)
  cp "$BIN/pause" "$ctx/pause"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
  build perflab-host/pause:1 "$ctx" "$ctx/Dockerfile"
  rm -rf "$ctx"
}

infra_images() {
  local ctx=$here/images
  build perflab-host/postgres:15 "$ctx" "$ctx/postgres.Dockerfile"
  build perflab-host/redis:7.0 "$ctx" "$ctx/redis.Dockerfile"
  # Kafka: the jars install-infra.sh fetched, in a context of their own.
  [[ -f $KAFKA_LIBS/.complete ]] || die "images: Kafka jars missing in $KAFKA_LIBS; run scripts/install-infra.sh"
  local kctx
  kctx=$(mktemp -d)
  cp -r "$KAFKA_LIBS" "$kctx/libs"
  cp "$ctx/kafka-run.sh" "$ctx/kafka-log4j2.properties" "$kctx/"
  build "perflab-host/kafka:$KAFKA_VERSION" "$kctx" "$ctx/kafka.Dockerfile"
  rm -rf "$kctx"
  [[ -x $JAEGER_BIN ]] || die "images: Jaeger binary missing at $JAEGER_BIN; run scripts/install-infra.sh"
  program_image "perflab-host/jaeger:$JAEGER_VERSION" "$JAEGER_BIN" jaeger 10001
}

# program_image TAG BINARY NAME UID: the binary as /bin/NAME on the Debian base.
program_image() {
  local tag=$1 binary=$2 name=$3 uid=$4 ctx
  ctx=$(mktemp -d)
  cp "$binary" "$ctx/$name"
  # shellcheck disable=SC2016  # ${BASE} is the Dockerfile's, not the shell's
  printf 'ARG BASE\nFROM ${BASE}\nCOPY %s /bin/%s\nUSER %s\nENTRYPOINT ["/bin/%s"]\n' \
    "$name" "$name" "$uid" "$name" >"$ctx/Dockerfile"
  build "$tag" "$ctx" "$ctx/Dockerfile"
  rm -rf "$ctx"
}

addon_images() {
  local p
  for p in "${!PROGRAM_IMAGE[@]}"; do program_image "${PROGRAM_IMAGE[$p]}" "$BIN/$p" "$p" 65534; done
}

all_images() {
  echo perflab-host/pause:1 "${INFRA_IMAGES[@]}" "${PROGRAM_IMAGE[@]}"
}

load() { # IMAGE...: one docker save stream into containerd's k8s.io namespace
  docker save "$@" | ctr -a "$CTRD_SOCK" -n k8s.io images import - >/dev/null ||
    die "images: importing $* into containerd failed"
}

BIN=${BIN:-$("$here/build.sh")}
mkdir -p "$STATE/logs"
case "${1:-}" in
  build)
    start=$SECONDS
    base_images
    infra_images
    addon_images
    log "images: built in $((SECONDS - start))s"
    ;;
  load)
    shift
    start=$SECONDS
    if (($#)); then
      load "$@"
    else
      # shellcheck disable=SC2046  # one word per image
      load $(all_images)
      log "images: imported into containerd in $((SECONDS - start))s"
    fi
    ;;
  docker)
    shift
    docker "$@"
    ;;
  *)
    echo "usage: $0 build|load [IMAGE...]|docker ARGS..." >&2
    exit 2
    ;;
esac
