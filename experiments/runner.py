"""Runs one experiment: the isolated stack, the A B A B schedule, the measurements, the
statistics, the raw files and the report."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import platform
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from experiments import report, stats
from experiments.cluster import ClusterContext, cluster_context
from experiments.context import PhaseMetrics, RunContext, isolated_stack
from experiments.framework import Arm, Experiment, directory
from experiments.loadgen import REPO, run_load
from experiments.schedule import alternation

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


def merged_env(experiment: Experiment, arm: Arm) -> dict[str, dict[str, str]]:
    services = set(experiment.base_env) | set(arm.env)
    return {s: {**experiment.base_env.get(s, {}), **arm.env.get(s, {})} for s in sorted(services)}


def merged_faults(experiment: Experiment, arm: Arm) -> dict[str, float]:
    names = set(experiment.base_faults) | {f for a in experiment.arms for f in a.faults}
    values = {n: 0.0 for n in names}
    return values | experiment.base_faults | arm.faults


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


def phase_record(
    experiment: Experiment,
    arm: Arm,
    rep: int,
    index: int,
    result: Any,
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
        "failures": _failures(result.out),
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


def _failures(folder: Path) -> list[dict[str, str]]:
    """The load-test runner's failure table of a phase (kind, count, first and last seen)."""
    path = folder / "locust_failures.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return [dict(row) for row in csv.DictReader(f)]


@contextlib.contextmanager
def target_context(
    experiment: Experiment, target: str, quick: bool, out: Path
) -> Iterator[RunContext | ClusterContext]:
    """local: an isolated copy of the stack; kind: the lab on the cluster, restored after."""
    if target == "kind":
        with cluster_context(experiment, quick, out) as cluster:
            yield cluster
        return
    env = merged_env(experiment, experiment.arms[0])
    with isolated_stack(experiment, out / "logs", env) as stack:
        yield RunContext(experiment, quick, out, stack)


def drain(ctx: RunContext | ClusterContext, timeout: float) -> dict[str, float]:
    """Waits until the phase's orders are all final; how many were pending, how long it took."""

    def pending() -> int:
        return int(ctx.sql("SELECT count(*) AS n FROM orders WHERE status = 'PENDING'")[0]["n"])

    started = time.monotonic()
    at_end = left = pending()
    while left and time.monotonic() - started < timeout:
        time.sleep(0.5)
        left = pending()
    waited = time.monotonic() - started
    if left:
        print(f"   {left} orders still PENDING after {timeout:.0f}s of draining", flush=True)
    elif at_end:
        print(f"   drained {at_end} pending orders in {waited:.1f}s", flush=True)
    return {
        "pending_at_end": float(at_end),
        "drain_s": waited if not left else math.nan,
        "pending_after_drain": float(left),
    }


def _host_cpu() -> tuple[float, float]:
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle, sum(t)


def aa_version(experiment: Experiment) -> Experiment:
    """The A/A form of an experiment: the baseline against itself, to measure noise bands."""
    base = experiment.baseline
    again = replace(base, key=f"{base.key}-again", label=f"{base.label} (again, A/A)")
    return replace(experiment, arms=[base, again], analysis=None)


def run(
    name: str, target: str, quick: bool, out_root: Path | None = None, aa: bool = False
) -> Path | None:
    from experiments.framework import load as load_experiment

    experiment = load_experiment(name)
    reason = experiment.why_not(target)
    if reason:
        print(f"SKIPPED {name}: {reason}", flush=True)
        return None
    if aa:
        experiment = aa_version(experiment)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    suffix = ("-aa" if aa else "") + ("-smoke" if quick else "")
    out = (out_root or directory(name) / "results") / (stamp + suffix)
    out.mkdir(parents=True, exist_ok=True)
    reps = experiment.quick_reps if quick else experiment.reps
    schedule = alternation([a.key for a in experiment.arms], reps)
    meta: dict[str, Any] = {
        "experiment": name,
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
                "env": merged_env(experiment, a),
                "faults": merged_faults(experiment, a),
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
    print(f"== {name}: {experiment.title}" + ("  [SMOKE RUN]" if quick else ""), flush=True)
    print(f"   schedule {' '.join(meta['schedule'])}; results in {out}", flush=True)
    records: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    began = time.monotonic()
    try:
        with target_context(experiment, target, quick, out) as ctx:
            try:
                if experiment.setup is not None:
                    print("   setup ...", flush=True)
                    experiment.setup(ctx)
                current: str | None = None
                for phase in schedule:
                    arm = experiment.arm(phase.arm)
                    if arm.key != current:
                        restarted = ctx.apply_env(merged_env(experiment, arm))
                        for fault, value in merged_faults(experiment, arm).items():
                            ctx.set_fault(fault, value)
                        if arm.enter is not None:
                            arm.enter(ctx)
                        current = arm.key
                        if restarted:
                            print(
                                f"   restarted {', '.join(restarted)} for {arm.label}", flush=True
                            )
                    if arm.before_phase is not None:
                        arm.before_phase(ctx)
                    profile = experiment.load_for(arm, quick)
                    tag = f"{phase.index + 1:02d}-{arm.key}{phase.rep}"
                    print(
                        f"-- [{phase.index + 1}/{len(schedule)}] {arm.key} ({arm.label}) rep "
                        f"{phase.rep}: {profile.warmup_s:.0f}s warm-up + {profile.duration_s:.0f}s "
                        f"(elapsed {time.monotonic() - began:.0f}s)",
                        flush=True,
                    )
                    phase_env = {"EXPERIMENT_PHASE": tag}
                    if profile.warmup_s > 0:
                        run_load(
                            profile,
                            ctx.gateway_url,
                            out / "phases" / f"{tag}-warmup",
                            f"{name}-{tag}-warmup",
                            profile.warmup_s,
                            phase_env,
                            echo=False,
                        )
                    before = ctx.scraper.snapshot()
                    pg_before = ctx.pg_stats()
                    busy0, all0 = _host_cpu()
                    started = time.time()
                    with ctx.scraper as scraper:
                        result = run_load(
                            profile,
                            ctx.gateway_url,
                            out / "phases" / tag,
                            f"{name}-{tag}",
                            profile.duration_s,
                            phase_env,
                        )
                    ended = time.time()
                    busy1, all1 = _host_cpu()
                    pm = PhaseMetrics(before, ctx.scraper.snapshot(), list(scraper.series))
                    pm.pg_before, pm.pg_after = pg_before, ctx.pg_stats()
                    host = 100 * (busy1 - busy0) / (all1 - all0) if all1 > all0 else math.nan
                    record = phase_record(
                        experiment, arm, phase.rep, phase.index, result, pm, host, started, ended
                    )
                    if experiment.drain_s > 0:
                        record.setdefault("resources", {}).update(drain(ctx, experiment.drain_s))
                    records.append(record)
                    for row in result.history:
                        history.append({"phase": tag, "arm": arm.key, "rep": phase.rep, **row})
                    print(
                        "   => "
                        + ", ".join(
                            f"{k} {report.fmt(record.get(k))}"
                            for k in ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "error_rate")
                        )
                        + "".join(
                            f", {k} {report.fmt(v)}" for k, v in record.get("resources", {}).items()
                        ),
                        flush=True,
                    )
            finally:
                if experiment.teardown is not None:
                    experiment.teardown(ctx)
    except BaseException as exc:  # keep what was measured, say why it stopped
        meta["aborted"] = f"{type(exc).__name__}: {exc}"
        meta["ended_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        write_raw(out, meta, records, history)
        print(f"== ABORTED after {len(records)} phases: {meta['aborted']}; raw data in {out}")
        raise
    meta["ended_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["duration_s"] = round(time.monotonic() - began, 1)
    meta["context"] = ctx.data
    write_raw(out, meta, records, history)
    summary = summarize([a.key for a in experiment.arms], records)
    if experiment.analysis is not None:
        text, figures = experiment.analysis({"records": records, "meta": meta})
        summary["analysis"] = {"markdown": text, "figures": figures}
    (out / "stats.json").write_text(json.dumps(summary, indent=2, default=str))
    report.write(out)
    print(f"== report: {out / 'report.md'}", flush=True)
    return out


def recompute(out: Path) -> Path:
    """stats.json (and the analysis) again from a folder's raw phases, then the report."""
    from experiments.framework import load as load_experiment

    meta = json.loads((out / "meta.json").read_text())
    records = [derive(r) for r in json.loads((out / "phases.json").read_text())]
    experiment = load_experiment(meta["experiment"])
    summary = summarize([a["key"] for a in meta["arms"]], records)  # the run's own arms
    if experiment.analysis is not None and not meta.get("aa"):
        text, figures = experiment.analysis({"records": records, "meta": meta})
        summary["analysis"] = {"markdown": text, "figures": figures}
    (out / "stats.json").write_text(json.dumps(summary, indent=2, default=str))
    return report.write(out)


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


def metric_values(records: list[dict[str, Any]], arm: str, key: str) -> list[float]:
    values = []
    for r in records:
        if r["arm"] != arm:
            continue
        v = r.get("resources", {}).get(key) if key not in r else r.get(key)
        values.append(float(v) if v is not None else math.nan)
    return values


def round_values(
    records: list[dict[str, Any]], arm: str, key: str, rounds: list[int]
) -> list[float]:
    """One value per round (nan where the arm has no phase in that round)."""
    by_round = {r["rep"]: r for r in records if r["arm"] == arm}
    values = []
    for rep in rounds:
        r = by_round.get(rep)
        v = None if r is None else (r.get("resources", {}).get(key) if key not in r else r.get(key))
        values.append(float(v) if v is not None else math.nan)
    return values


def summarize(arms: list[str], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric and arm: the median of its phases and their range; per change arm: the
    paired ratio to the baseline (round by round) with its 95 % t-interval, and for metrics
    whose baseline is 0 (no ratio) the p-value of an exact rank test."""
    keys = list(METRICS)
    for r in records:
        keys += [k for k in r.get("resources", {}) if k not in keys]
    baseline = arms[0]
    rounds = sorted({r["rep"] for r in records})
    out: dict[str, Any] = {
        "baseline": baseline,
        "rounds": len(rounds),
        "method": "paired per-round ratios; geometric mean with a 95 % t-interval on log ratios",
        "metrics": {},
    }
    for key in keys:
        paired = {arm: round_values(records, arm, key, rounds) for arm in arms}
        entry: dict[str, Any] = {"label": METRICS.get(key, key), "arms": {}, "ratios": {}}
        for arm in arms:
            values = metric_values(records, arm, key)
            entry["arms"][arm] = stats.spread(values).as_dict() | {"values": values}
            if arm != baseline:
                entry["ratios"][arm] = stats.paired_ratio_ci(
                    paired[baseline], paired[arm]
                ).as_dict()
                entry["ratios"][arm]["rank_p"] = stats.rank_test(
                    metric_values(records, baseline, key), values
                )
        out["metrics"][key] = entry
    return out
