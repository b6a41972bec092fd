#!/usr/bin/env bash
# `make test`, the project's one test command (CI runs it): installs what the tests need,
# starts building the cluster's programs in the background, then runs lint, the generated-code
# check, every pytest suite (unit, integration, end-to-end against real infrastructure) and the
# cluster test. Stops everything it started, whether it passes or fails: the background build
# here, the local infrastructure in the test session (conftest.py), the cluster in its test.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$PERFLAB_ROOT"

stop_prebuild() {
  local pidfile=$LOG_DIR/hostcluster-build.pid pid
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  rm -f "$pidfile"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping the cluster programs' background build (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || true
  fi
}
trap stop_prebuild EXIT

start=$SECONDS
# The cluster's programs first: cold, they are the longest step (about 47 CPU-minutes), and at
# the lowest priority they take only the CPU the installs and tests leave idle.
scripts/test-cluster.sh prebuild
scripts/install-infra.sh
make lint proto-check
.venv/bin/python -m pytest
scripts/test-cluster.sh
log "make test: everything passed in $(((SECONDS - start) / 60)) min"
