"""How far the load generator's latencies can be trusted: the project's runner and vegeta
(Go, MIT; built by scripts/install-vegeta.sh) offer the same open-loop rate to the gateway's
cached product read at 25 %, 50 % and 75 % of its capacity, on an isolated copy of the stack
(its own ports, databases and Redis prefix, like an experiment's). Prints both tools'
p50/p95/p99 and their ratios, and the runner's own ceiling in iterations/s per core of CPU.

    make loadgen-accuracy                      # DURATION=15 (seconds per run), LEVELS=25,50,75
    .venv/bin/python -m loadtests.accuracy

A benchmark that prints figures, not a test: nothing here passes or fails on timing. The
tools run one after the other, alternating which goes first at each level.
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
    p.add_argument("--out", type=Path, default=REPO / "loadtests" / "results" / "accuracy")
    args = p.parse_args(argv)
    levels = [float(x) / 100 for x in args.levels.split(",")]

    from experiments.context import isolated_stack
    from experiments.framework import Arm, Experiment, LoadProfile

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
        rows = []
        for i, level in enumerate(levels):
            rate = round(capacity * level)
            results: dict[str, Any] = {}
            order = ("vegeta", "runner") if i % 2 == 0 else ("runner", "vegeta")
            for tool in order:
                if tool == "vegeta":
                    v = vegeta(binary, url, rate, args.seconds)["latencies"]
                    results["vegeta"] = [v[k] / 1e6 for k in ("50th", "95th", "99th")]
                else:
                    s = runner(url, rate, args.seconds, args.out / f"runner-{int(level * 100)}")
                    t = s["total"]
                    results["runner"] = [t["p50"], t["p95"], t["p99"]]
                    results["summary"] = s
            rows.append((level, rate, results))
            s = results["summary"]
            g = s.get("generator") or {}
            print(
                f"{level:>4.0%} {rate:>6}/s  vegeta p50/p95/p99 "
                + "/".join(f"{x:.2f}" for x in results["vegeta"])
                + " ms  runner "
                + "/".join(f"{x:.2f}" for x in results["runner"])
                + " ms  ratio "
                + "/".join(
                    f"{r / v:.2f}"
                    for r, v in zip(results["runner"], results["vegeta"], strict=True)
                )
                + f"  runner: {s['load']['iterations_per_s']:.0f} it/s, CPU"
                f" {(g.get('cpu_avg') or 0):.0%} of a core, start delay p95"
                f" {(s['load']['iteration_start_delay'] or {}).get('p95') or 0:.2f} ms,"
                f" valid {s['run'].get('valid')}",
                flush=True,
            )
        ceilings = [
            r["summary"]["load"]["iterations_per_s"] / r["summary"]["generator"]["cpu_avg"]
            for _, _, r in rows
            if (r["summary"].get("generator") or {}).get("cpu_avg")
        ]
        if ceilings:
            print(
                "runner's ceiling: ~" + f"{sum(ceilings) / len(ceilings):.0f} iterations/s per core"
                " (achieved rate / its CPU share at each level, averaged)"
            )
        (args.out / "accuracy.json").write_text(
            json.dumps(
                {
                    "capacity": capacity,
                    "levels": [
                        {
                            "level": level,
                            "rate": rate,
                            "vegeta_ms": r["vegeta"],
                            "runner_ms": r["runner"],
                            "generator": r["summary"].get("generator"),
                        }
                        for level, rate, r in rows
                    ],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
