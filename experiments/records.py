"""What a run keeps: one record per phase (the figures every phase records, the experiment's own
resources), the run's metadata (git, machine), and the raw files written from them
(meta.json, phases.json, phases.csv, history.csv), from which everything else is recomputed."""

from __future__ import annotations

import csv
import json
import math
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from experiments.framework import Arm, Experiment
from experiments.loadgen import REPO, LoadResult
from experiments.phase_metrics import PhaseMetrics
from experiments.rounds import Phase

# Figures every phase records (besides the experiment's own resources).
METRICS = {
    "throughput_rps": "throughput of the measured endpoint (req/s)",
    "goodput_rps": "successful requests of that endpoint (req/s)",
    "p50_ms": "p50 latency (ms)",
    "p95_ms": "p95 latency (ms)",
    "p99_ms": "p99 latency (ms)",
    "error_rate": "error rate",
    "total_rps": "all requests (req/s)",
    "dropped_iterations": "dropped iterations (open loop)",
    "start_delay_p95_ms": "iteration start delay p95 (ms, the generator's lag)",
    "cpu_ms_per_request": "services' CPU ms per request",
    "host_cpu_percent": "host CPU busy (%, load generator included)",
}


def git_metadata() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip()

    return {"revision": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def machine_metadata() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpus": psutil.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": list(psutil.getloadavg()),
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_meta(
    experiment: Experiment, target: str, quick: bool, aa: bool, schedule: list[Phase]
) -> dict[str, Any]:
    """meta.json as a run starts: the question, the arms with their full configuration and
    load, the schedule, the machine and the git revision."""
    return {
        "experiment": experiment.name,
        "title": experiment.title,
        "question": experiment.question,
        "hypothesis": experiment.hypothesis,
        "change": experiment.change,
        "smoke_run": quick,
        "aa": aa,
        "target": target,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_metadata(),
        "machine": machine_metadata(),
        "arms": [
            {
                "key": a.key,
                "label": a.label,
                "env": experiment.env_for(a),
                "faults": experiment.faults_for(a),
                "x": a.x,
                "warmup_s": experiment.load_for(a, quick).warmup_s,
                "load": experiment.load_for(a, quick).scenario(
                    "phase", experiment.load_for(a, quick).duration_s
                ),
            }
            for a in experiment.arms
        ],
        "schedule": [p.arm + ("" if len(p.arm) == 1 else "#") + str(p.rep) for p in schedule],
    }


def phase_record(
    experiment: Experiment,
    arm: Arm,
    rep: int,
    index: int,
    result: LoadResult,
    pm: PhaseMetrics,
    host_cpu: float,
    started: float,
    ended: float,
) -> dict[str, Any]:
    load = experiment.load_for(arm, quick=False)
    focus = result.endpoint(load.focus)
    total = result.endpoint("")
    requests = int(total.get("requests") or 0)
    cpu = sum(pm.delta(s, "process_cpu_seconds_total") for s in pm.after.services)
    record: dict[str, Any] = {
        "index": index,
        "arm": arm.key,
        "label": arm.label,
        "rep": rep,
        "x": arm.x,
        "started_at": started,
        "ended_at": ended,
        "requests": requests,
        "focus": load.focus or "all requests",
        "throughput_rps": focus.get("rate"),
        "p50_ms": focus.get("p50"),
        "p95_ms": focus.get("p95"),
        "p99_ms": focus.get("p99"),
        "max_ms": focus.get("max"),
        "error_rate": focus.get("failure_rate"),
        "total_rps": total.get("rate"),
        "dropped_iterations": (result.summary.get("load") or {}).get("dropped_iterations"),
        "start_delay_p95_ms": (
            (result.summary.get("load") or {}).get("iteration_start_delay") or {}
        ).get("p95"),
        "loadgen_valid": (result.summary.get("run") or {}).get("valid"),
        "loadgen_cpu": (result.summary.get("generator") or {}).get("cpu_avg"),
        "cpu_ms_per_request": cpu / requests * 1000 if requests else math.nan,
        "cpu_seconds_by_service": {
            s: pm.delta(s, "process_cpu_seconds_total") for s in pm.after.services
        },
        "host_cpu_percent": host_cpu,
        "loadtest_exit_code": result.exit_code,
        "loadtest_dir": str(result.out.relative_to(REPO))
        if result.out.is_relative_to(REPO)
        else str(result.out),
        "checks": result.summary.get("checks"),
        "failures": failures(result.out),
    }
    derive(record)
    pm.requests = requests
    if experiment.resources is not None:
        record["resources"] = experiment.resources(pm)
    return record


def derive(record: dict[str, Any]) -> dict[str, Any]:
    """Figures computed from others (also for folders written before they existed)."""
    rate, failed = record.get("throughput_rps"), record.get("error_rate")
    if "goodput_rps" not in record and rate is not None and failed is not None:
        record["goodput_rps"] = rate * (1 - failed)
    return record


def failures(folder: Path) -> list[dict[str, str]]:
    """The load-test runner's failure table of a phase (kind, count, first and last seen)."""
    path = folder / "locust_failures.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return [dict(row) for row in csv.DictReader(f)]


def write_raw(
    out: Path, meta: dict[str, Any], records: list[dict[str, Any]], history: list[dict[str, Any]]
) -> None:
    (out / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    (out / "phases.json").write_text(json.dumps(records, indent=2, default=str))
    flat = [
        {k: v for k, v in r.items() if not isinstance(v, dict | list)}
        | {f"resource:{k}": v for k, v in r.get("resources", {}).items()}
        for r in records
    ]
    _write_csv(out / "phases.csv", flat)
    _write_csv(out / "history.csv", history)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
