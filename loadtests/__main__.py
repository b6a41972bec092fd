"""Command line of the scenario runner.

    python -m loadtests run loadtests/scenarios/load.yaml --target local [--variant ci]
        [--raw requests.csv|requests.jsonl]
    python -m loadtests validate loadtests/scenarios/*.yaml
    python -m loadtests list

Exit codes: 0 every threshold passed, 99 a threshold failed (or abortOnFail stopped the run),
98 the run is not valid (the load generator was saturated), 2 the scenario or the command
line is wrong, 1 anything else (target down, interrupted).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from loadtests.scenario import (
    SCENARIOS_DIR,
    ScenarioError,
    find,
    format_duration,
    load,
    resolve_target,
)

EXIT_ERROR, EXIT_USAGE = 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtests", description="k6-style load-test scenarios on Locust."
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one scenario")
    run.add_argument(
        "scenario", help="scenario file, or the name of a shipped one (smoke, load, ...)"
    )
    run.add_argument(
        "--target",
        default=os.environ.get("TARGET") or "local",
        help="local | kind | http://host:port",
    )
    run.add_argument(
        "--variant",
        default=os.environ.get("VARIANT") or None,
        help="variant of the scenario, e.g. ci",
    )
    run.add_argument(
        "--out", type=Path, help="results folder (default loadtests/results/<timestamp>-<scenario>)"
    )
    run.add_argument(
        "--metrics",
        default=os.environ.get("LOADTEST_METRICS", "127.0.0.1:19105"),
        help="address of the Prometheus /metrics endpoint, 'off' to disable (default %(default)s)",
    )
    run.add_argument(
        "--progress-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="live progress interval",
    )
    run.add_argument(
        "--raw",
        type=Path,
        metavar="FILE",
        help="every request as a line of FILE: CSV, or JSON lines when FILE ends in .jsonl",
    )
    run.add_argument(
        "--linger",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep /metrics up after the run",
    )

    validate = sub.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("scenarios", nargs="+")
    validate.add_argument("--variant", default=None)

    sub.add_parser("list", help="list the shipped scenarios")
    return p


def cmd_validate(args: argparse.Namespace) -> int:
    status = 0
    for name in args.scenarios:
        try:
            s = load(find(name), variant=args.variant)
            variants = ", ".join(s.raw.get("variants") or {}) or "-"
            several = len(s.workloads) > 1
            names = ", ".join(f"{w.name} [{w.executor}]" for w in s.workloads)
            print(
                f"ok    {s.source}: {f'scenarios {names}' if several else s.executor},"
                f" {format_duration(s.duration)},"
                f" {len(s.thresholds)} thresholds, variants: {variants}"
            )
        except ScenarioError as exc:
            print(f"error {exc}", file=sys.stderr)
            status = EXIT_USAGE
    return status


def cmd_list() -> int:
    for path in sorted(SCENARIOS_DIR.glob("*.yaml")):
        try:
            s = load(path)
            print(
                f"{s.name:<15} {s.executor:<22} {format_duration(s.duration):>8}"
                f"  {s.description.splitlines()[0] if s.description else ''}"
            )
        except ScenarioError as exc:
            print(f"{path.stem:<15} INVALID: {exc}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    try:
        scenario = load(find(args.scenario), variant=args.variant)
        target = resolve_target(args.target)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from loadtests import runner  # imports Locust, which monkey-patches the process with gevent

    options = runner.Options(
        target=target,
        out_dir=args.out,
        metrics_address=None if args.metrics in ("", "off", "0") else args.metrics,
        progress_every=args.progress_every,
        linger=args.linger,
        raw=args.raw,
    )
    try:
        return runner.run(scenario, options)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "validate":
        return cmd_validate(args)
    if args.command == "list":
        return cmd_list()
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
