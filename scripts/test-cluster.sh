#!/usr/bin/env bash
# `make test-cluster`: the lab on a real single-node Kubernetes that deploy/hostcluster/
# builds and runs on this host (kind needs a registry this project's CI cannot reach). It
# brings the lab up with `make up PROVIDER=host`, proves it (deploy/hostcluster/tests/), takes
# it down and checks the host is as it was, then prints a table of what was proven.
#
# It needs root on Linux. It never skips by itself: set PERFLAB_SKIP_CLUSTER=1 to skip it
# on purpose (it then says so and exits 0).
#
#   scripts/test-cluster.sh            run the test (after building what is not built yet)
#   scripts/test-cluster.sh prebuild   start building the cluster's programs in the background,
#                                      at the lowest CPU priority (make test does this before
#                                      its other tests, which leave a core idle much of the time)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$PERFLAB_ROOT"

if [[ ${PERFLAB_SKIP_CLUSTER:-0} == 1 ]]; then
  [[ ${1:-} != prebuild ]] || exit 0
  printf '\n\033[1;33m%s\033[0m\n\n' "SKIPPED: the cluster test (PERFLAB_SKIP_CLUSTER=1). Kubernetes was NOT tested."
  exit 0
fi
[[ $(uname -s) == Linux ]] || die "the cluster test runs a kubelet: Linux only (or set PERFLAB_SKIP_CLUSTER=1 to skip it)"
((EUID == 0)) || die "the cluster test needs root (it starts a kubelet and changes iptables); run it as root, or set PERFLAB_SKIP_CLUSTER=1 to skip it"
deploy/hostcluster/hostcluster.sh install
if [[ ${1:-} == prebuild ]]; then
  mkdir -p "$LOG_DIR"
  log "cluster test: building its programs in the background (log: $LOG_DIR/hostcluster-build.log)"
  setsid nohup nice -n 19 deploy/hostcluster/build.sh >"$LOG_DIR/hostcluster-build.log" 2>&1 </dev/null &
  # Its own process group (setsid): `scripts/test.sh` stops the whole build with this pid.
  echo $! >"$LOG_DIR/hostcluster-build.pid"
  exit 0
fi
# -s: the long steps (make up, the spike) show their progress as they run.
exec .venv/bin/python -m pytest deploy/hostcluster/tests -p no:cacheprovider -v -s "$@"
