"""Command line of the experiments.

    python -m experiments list
    python -m experiments run NAME [--target local] [--quick] [--aa] [--profile]
    python -m experiments all [--target local] [--quick] [--profile]
                                                      every experiment the target allows
    python -m experiments report RESULTS_DIR          recompute stats, report, plots
    python -m experiments refresh-readme NAME [--from RESULTS_DIR]

`--quick` is a smoke run: short phases, one round, no conclusion, and the report says so.
`--aa` runs the baseline against itself and saves each metric's noise band (noise.json).
`--profile` adds a flame graph of each service per phase (py-spy; local target only); py-spy's
own CPU makes such a run's figures incomparable with an unprofiled run's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from experiments import conduct, framework, writeup
from experiments.profiles import Profiler

PROFILE_HELP = (
    "a flame graph of each service per phase (py-spy, local target only); py-spy takes CPU, "
    "so the figures are not comparable with an unprofiled run's"
)


def latest_result(name: str) -> Path | None:
    """The newest complete full run, else the newest smoke run, that has a report (neither
    an A/A run nor a profiled one: py-spy's CPU makes its figures incomparable)."""
    folders = sorted(p.parent for p in (framework.directory(name) / "results").glob("*/report.md"))
    folders = [
        p
        for p in folders
        if not {"aborted", "aa", "profiled"}
        & {k for k, v in json.loads((p / "meta.json").read_text()).items() if v}
    ]
    full = [p for p in folders if not p.name.endswith("-smoke")]
    chosen = full or folders
    return chosen[-1] if chosen else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the experiments, their question and where they run")
    target = os.environ.get("TARGET") or "local"
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("name")
    run.add_argument("--target", default=target)
    run.add_argument("--quick", action="store_true", help="smoke run: short, not a result")
    run.add_argument(
        "--aa", action="store_true", help="A/A run: the baseline twice, to measure noise bands"
    )
    run.add_argument("--profile", action="store_true", help=PROFILE_HELP)
    every = sub.add_parser("all", help="run every experiment that applies to the target")
    every.add_argument("--target", default=target)
    every.add_argument("--quick", action="store_true")
    every.add_argument("--profile", action="store_true", help=PROFILE_HELP)
    rep = sub.add_parser(
        "report", help="recompute statistics, report.md and plots from a folder's raw data"
    )
    rep.add_argument("folder", type=Path)
    refresh = sub.add_parser("refresh-readme", help="put a run's figures into the README")
    refresh.add_argument("name")
    refresh.add_argument("--from", dest="folder", type=Path, default=None)
    args = p.parse_args(argv)

    if args.command == "list":
        for name in framework.names():
            e = framework.load(name)
            print(f"{name:18} [{', '.join(e.targets)}] {e.question}")
        return 0
    if args.command == "run":
        profiler = Profiler() if args.profile else None
        conduct.run(args.name, args.target, args.quick, aa=args.aa, profiler=profiler)
        return 0
    if args.command == "all":
        failed = []
        for name in framework.names():
            try:
                profiler = Profiler() if args.profile else None
                conduct.run(name, args.target, args.quick, profiler=profiler)
            except Exception as exc:  # one broken experiment must not hide the others
                print(f"FAILED {name}: {exc}", file=sys.stderr)
                failed.append(name)
        return 1 if failed else 0
    if args.command == "report":
        print(conduct.recompute(args.folder))
        return 0
    folder = args.folder or latest_result(args.name)
    if folder is None:
        print(f"no results for {args.name}: run it first", file=sys.stderr)
        return 1
    readme = framework.directory(args.name) / "README.md"
    writeup.refresh_readme(readme, folder.resolve())
    print(f"{readme}: reference run from {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
