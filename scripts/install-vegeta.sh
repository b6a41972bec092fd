#!/usr/bin/env bash
# Builds vegeta (HTTP load generator, MIT) from its Go module into
# $PERFLAB_CACHE/vegeta-<version>/vegeta, for `make loadgen-accuracy`; prints the binary's path.
# Idempotent: a cached binary is reused.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

VEGETA_VERSION=${VEGETA_VERSION:-v12.13.0}
VEGETA_DIR=$PERFLAB_CACHE/vegeta-$VEGETA_VERSION

if [[ ! -x $VEGETA_DIR/vegeta ]]; then
  command -v go >/dev/null || die "vegeta: the go command is needed to build it"
  mkdir -p "$VEGETA_DIR"
  log "vegeta $VEGETA_VERSION: building from the Go module proxy (a minute or two)"
  (cd / && GOBIN=$VEGETA_DIR go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION") \
    >"$VEGETA_DIR/build.log" 2>&1 || {
    tail -n 20 "$VEGETA_DIR/build.log" >&2
    die "vegeta: build failed; see $VEGETA_DIR/build.log"
  }
  [[ -x $VEGETA_DIR/vegeta ]] || die "vegeta: go install left no binary in $VEGETA_DIR"
fi
echo "$VEGETA_DIR/vegeta"
