"""`make profile SERVICE=orders SECONDS=30`: a flame graph of a running local service (py-spy).

py-spy samples the service's Python stacks from outside (ptrace, `--nonblocking`: the
process is never paused), so it profiles the real thing under real load without a restart
or a code change. Run a load meanwhile (`make bench`, `make load`, an experiment) and open the
SVG in a browser, or the speedscope JSON at speedscope.app. `make bench PROFILE=1` records one
per service next to its figures, and the experiments' `--profile` one per service and phase,
with the same functions (perflab.dev.profiling).
"""

import argparse
import os
import sys
import time
from pathlib import Path

from perflab.dev.processes import SERVICES
from perflab.dev.profiling import SUFFIX, ProfileFailed, finish, record

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PERFLAB_DATA", REPO / ".local"))


def local_pid(service: str) -> int:
    """The pid of a service `make local` started (its pid file), checked to be that service."""
    pid_file = DATA / "run" / f"{service}.pid"
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        sys.exit(f"{service} is not running locally (no live {pid_file}): start `make local`")
    if f"perflab.{service}".encode() not in cmdline:
        sys.exit(f"pid {pid} in {pid_file} is not perflab.{service}: restart `make local`")
    return pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=sorted(SERVICES))
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--format", choices=sorted(SUFFIX), default="flamegraph")
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--target", choices=["local", "kind"], default="local")
    args = parser.parse_args()
    if args.target == "kind":
        sys.exit(
            "make profile TARGET=kind is not built yet: it needs py-spy in the service images and "
            "the SYS_PTRACE capability (an ephemeral debug container: kubectl debug --profile="
            "general --target=<container>). Profile the local stack meanwhile."
        )
    pid = local_pid(args.service)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = REPO / "results" / "profiles" / f"{args.service}-{stamp}.{SUFFIX[args.format]}"
    print(f"profiling {args.service} (pid {pid}) for {args.seconds}s ...", file=sys.stderr)
    try:
        process = record(pid, args.seconds, out, args.format, args.rate)
    except ProfileFailed as failed:
        sys.exit(str(failed))
    if finish(process, out) is None:
        sys.exit(1)
    print(out)


if __name__ == "__main__":
    main()
