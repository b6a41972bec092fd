"""How far the load generator's latencies can be trusted: the project's runner and vegeta
(Go, MIT; built by scripts/install-vegeta.sh) offer the same open-loop rate to the gateway's
cached product read at 25 %, 50 % and 75 % of its capacity, on an isolated copy of the stack
(its own ports, databases and Redis prefix, like an experiment's). Prints both tools'
p50/p95/p99 and their ratios, and the runner's own ceiling in iterations/s per core of CPU.

    make loadgen-accuracy                      # DURATION=15 (s per run), LEVELS=25,50,75, ROUNDS=3
    .venv/bin/python -m loadtests.accuracy

A benchmark that prints figures, not a test: nothing here passes or fails on timing. The
tools run one after the other, alternating which goes first, for several rounds; the ratios
are medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
PRODUCTS = 20  # the product ids both tools read, round robin: all cached after the warm-up


def cached_read(vu: Any) -> None:
    """The runner's journey: one read of a cached product (the same ids vegeta reads)."""
    vu.n = getattr(vu, "n", vu.rng.randrange(PRODUCTS)) + 1
    product_id = vu.n % PRODUCTS + 1
    vu.get(f"/api/products/{product_id}", name="/api/products/{id}")


def vegeta_binary() -> str:
    done = subprocess.run(
        [str(REPO / "scripts" / "install-vegeta.sh")], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"vegeta could not be installed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def vegeta(
    binary: str, url: str, rate: float, seconds: float, workers: int | None = None
) -> dict[str, Any]:
    """One vegeta attack; its JSON report (latencies in ns)."""
    targets = "\n".join(f"GET {url}/api/products/{i}" for i in range(1, PRODUCTS + 1)) + "\n"
    attack = [binary, "attack", f"-rate={rate:g}/s" if rate else "-rate=0", f"-duration={seconds}s"]
    if workers:
        attack += [f"-max-workers={workers}", f"-workers={workers}"]
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.bin"
        with results.open("wb") as out:
            subprocess.run(attack, input=targets.encode(), stdout=out, check=True)
        report = subprocess.run(
            [binary, "report", "-type=json", str(results)],
            capture_output=True,
            check=True,
        )
    return dict(json.loads(report.stdout))


def runner(url: str, rate: float, seconds: float, out: Path) -> dict[str, Any]:
    """One run of the project's runner at ``rate`` it/s; its summary.json."""
    scenario = {
        "name": "loadgen-accuracy",
        "executor": "constant-arrival-rate",
        "rate": rate,
        "duration": f"{seconds:g}s",
        "preAllocatedVUs": max(5, int(rate // 20)),
        "maxVUs": 500,
        "gracefulStop": "10s",
        "thinkTime": "0s",
        "journeys": {"loadtests.accuracy:cached_read": 1},
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    subprocess.run(
        [
            *(sys.executable, "-m", "loadtests", "run", str(path), "--target", url),
            *("--out", str(out), "--metrics", "off", "--progress-every", "0"),
        ],
        cwd=REPO,
        capture_output=True,
        check=False,  # exit 98 (generator saturated) still leaves a summary to report
    )
    return dict(json.loads((out / "summary.json").read_text()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.accuracy", description=__doc__)
    p.add_argument("--seconds", type=float, default=float(os.environ.get("DURATION") or 15))
    p.add_argument("--levels", default=os.environ.get("LEVELS") or "25,50,75")
    p.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS") or 3))
    p.add_argument("--out", type=Path, default=REPO / "loadtests" / "results" / "accuracy")
    args = p.parse_args(argv)
    levels = [float(x) / 100 for x in args.levels.split(",")]

    from experiments.framework import Arm, Experiment, LoadProfile
    from experiments.local import isolated_stack

    binary = vegeta_binary()
    stack_def = Experiment(
        name="loadgen-accuracy",
        title="load generator accuracy",
        question="",
        hypothesis="",
        change="",
        arms=[Arm("A", "-"), Arm("B", "-")],
        load=LoadProfile(journeys={"product": 1}),
        services=("orders", "gateway"),
        products=PRODUCTS,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    with isolated_stack(stack_def, args.out / "logs", {}) as stack:
        url = f"http://127.0.0.1:{stack.config.ports.gateway}"
        print(f"isolated gateway at {url}; vegeta {binary}", flush=True)
        vegeta(binary, url, 50, 3)  # warm-up: every product id cached
        capacity = float(vegeta(binary, url, 0, args.seconds, workers=32)["throughput"])
        print(f"capacity of the cached read (vegeta, 32 workers, closed loop): {capacity:.0f}/s")
        runs: list[dict[str, Any]] = []
        for round_ in range(args.rounds):
            for i, level in enumerate(levels):
                rate = round(capacity * level)
                run: dict[str, Any] = {"level": level, "rate": rate, "round": round_ + 1}
                first = (i + round_) % 2 == 0  # alternate which tool goes first
                for tool in ("vegeta", "runner") if first else ("runner", "vegeta"):
                    if tool == "vegeta":
                        v = vegeta(binary, url, rate, args.seconds)["latencies"]
                        run["vegeta"] = [v[k] / 1e6 for k in ("50th", "95th", "99th")]
                    else:
                        folder = args.out / f"runner-{int(level * 100)}-{round_ + 1}"
                        s = runner(url, rate, args.seconds, folder)
                        run["runner"] = [s["total"][k] for k in ("p50", "p95", "p99")]
                        run["achieved"] = s["load"]["iterations_per_s"]
                        run["cpu"] = (s.get("generator") or {}).get("cpu_avg")
                        run["delay_p95"] = (s["load"]["iteration_start_delay"] or {}).get("p95")
                        run["valid"] = s["run"].get("valid")
                run["ratio"] = [r / v for r, v in zip(run["runner"], run["vegeta"], strict=True)]
                runs.append(run)
                print(
                    f"round {round_ + 1} {level:>4.0%} {rate:>6}/s  p50/p95/p99 ms: vegeta "
                    + "/".join(f"{x:.1f}" for x in run["vegeta"])
                    + "  runner "
                    + "/".join(f"{x:.1f}" for x in run["runner"])
                    + "  ratio "
                    + "/".join(f"{x:.2f}" for x in run["ratio"])
                    + f"  (runner {run['achieved']:.0f} it/s, CPU {(run['cpu'] or 0):.0%},"
                    f" start delay p95 {run['delay_p95'] or 0:.1f} ms, valid {run['valid']})",
                    flush=True,
                )
        print("\nmedian over the rounds, runner / vegeta (p50, p95, p99):")
        for level in levels:
            mine = [r for r in runs if r["level"] == level]
            ratios = np.median(np.array([r["ratio"] for r in mine]), axis=0)
            print(
                f"  {level:>4.0%} of capacity: "
                + ", ".join(f"{x:.2f}" for x in ratios)
                + f"  ({len(mine)} rounds)"
            )
        with_cpu = [r for r in runs if r.get("cpu")]
        if len({r["level"] for r in with_cpu}) >= 2:
            # CPU share = overhead + rate / ceiling: the slope is the cost of one iteration
            slope, overhead = np.polyfit(
                [r["achieved"] for r in with_cpu], [r["cpu"] for r in with_cpu], 1
            )
            if slope > 0:
                print(
                    f"runner's ceiling: ~{1 / slope:.0f} iterations/s per core (1 / the slope of"
                    f" its CPU against the achieved rate; fixed overhead {overhead:.0%} of a core)"
                )
        (args.out / "accuracy.json").write_text(
            json.dumps({"capacity": capacity, "runs": runs}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
