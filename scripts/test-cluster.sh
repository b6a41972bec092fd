#!/usr/bin/env bash
# `make test-cluster`: the lab on a real single-node Kubernetes that deploy/hostcluster/
# builds and runs on this host (kind needs a registry this project's CI cannot reach). It
# brings the lab up with `make up PROVIDER=host`, proves it (deploy/hostcluster/tests/), takes
# it down and checks the host is as it was, then prints a table of what was proven.
#
# It needs root on Linux. It never skips by itself: set PERFLAB_SKIP_CLUSTER=1 to skip it
# on purpose (it then says so and exits 0).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$PERFLAB_ROOT"

if [[ ${PERFLAB_SKIP_CLUSTER:-0} == 1 ]]; then
  printf '\n\033[1;33m%s\033[0m\n\n' "SKIPPED: the cluster test (PERFLAB_SKIP_CLUSTER=1). Kubernetes was NOT tested."
  exit 0
fi
[[ $(uname -s) == Linux ]] || die "the cluster test runs a kubelet: Linux only (or set PERFLAB_SKIP_CLUSTER=1 to skip it)"
((EUID == 0)) || die "the cluster test needs root (it starts a kubelet and changes iptables); run it as root, or set PERFLAB_SKIP_CLUSTER=1 to skip it"
deploy/hostcluster/hostcluster.sh install
exec .venv/bin/python -m pytest deploy/hostcluster/tests -p no:cacheprovider -v "$@"
