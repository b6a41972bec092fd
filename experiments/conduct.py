"""Conducts one experiment: the target (an isolated stack, or the kind lab), the arms in
alternating rounds, each phase's load and measurements (with --profile, flame graphs), then the
raw files, stats.json and the report. `recompute` does the last two again from a results
folder."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from experiments import writeup
from experiments.cluster import ClusterContext, cluster_context
from experiments.comparison import write_stats
from experiments.framework import Arm, Experiment, directory
from experiments.loadgen import run_load
from experiments.local import LocalContext, isolated_stack
from experiments.phase_metrics import PhaseMetrics
from experiments.profiles import Profiler, local_only
from experiments.records import derive, phase_record, run_meta, write_raw
from experiments.rounds import Phase, alternation


@contextlib.contextmanager
def target_context(
    experiment: Experiment, target: str, quick: bool, out: Path
) -> Iterator[LocalContext | ClusterContext]:
    """local: an isolated copy of the stack; kind: the lab on the cluster, restored after."""
    if target == "kind":
        with cluster_context(experiment, quick, out) as cluster:
            yield cluster
        return
    env = experiment.env_for(experiment.arms[0])
    with isolated_stack(experiment, out / "logs", env) as stack:
        yield LocalContext(experiment, quick, out, stack)


def drain(ctx: LocalContext | ClusterContext, timeout: float) -> dict[str, float]:
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


def measure_phase(
    ctx: LocalContext | ClusterContext,
    experiment: Experiment,
    arm: Arm,
    phase: Phase,
    quick: bool,
    out: Path,
    phases: int,
    elapsed: float,
    profiler: Profiler | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One phase: its unmeasured warm-up, then the load with the metrics sampled around and
    during it (and each service profiled, with a profiler); its record and its per-second
    history rows. ``phases`` (how many the run has) and ``elapsed`` (seconds since the run
    began) are for its first line."""
    name = experiment.name
    profile = experiment.load_for(arm, quick)
    tag = f"{phase.index + 1:02d}-{arm.key}{phase.rep}"
    print(
        f"-- [{phase.index + 1}/{phases}] {arm.key} ({arm.label}) rep "
        f"{phase.rep}: {profile.warmup_s:.0f}s warm-up + {profile.duration_s:.0f}s "
        f"(elapsed {elapsed:.0f}s)",
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
    profiling = (
        profiler.phase(tag, ctx.pids(), profile.duration_s, out)
        if profiler is not None
        else contextlib.nullcontext()
    )
    with profiling, ctx.scraper as scraper:  # the scraper stops with the load, py-spy after
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
    record = phase_record(experiment, arm, phase.rep, phase.index, result, pm, host, started, ended)
    if experiment.drain_s > 0:
        record.setdefault("resources", {}).update(drain(ctx, experiment.drain_s))
    print(
        "   => "
        + ", ".join(
            f"{k} {writeup.fmt(record.get(k))}"
            for k in ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "error_rate")
        )
        + "".join(f", {k} {writeup.fmt(v)}" for k, v in record.get("resources", {}).items()),
        flush=True,
    )
    return record, [
        {"phase": tag, "arm": arm.key, "rep": phase.rep, **row} for row in result.history
    ]


def run(
    name: str,
    target: str,
    quick: bool,
    out_root: Path | None = None,
    aa: bool = False,
    profiler: Profiler | None = None,
) -> Path | None:
    """Runs the experiment `name` on `target`; its results folder (None when the experiment
    does not run there). With a `profiler` (--profile), a flame graph of each service per
    phase: local target only."""
    from experiments.framework import load as load_experiment

    if profiler is not None and (refused := local_only(target)):
        raise SystemExit(refused)
    if profiler is not None and aa:  # noise.json must hold the bands of unprofiled runs
        raise SystemExit(
            "--profile and --aa do not mix: py-spy's CPU would widen noise.json's bands"
        )
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
    meta = run_meta(experiment, target, quick, aa, schedule)
    meta["profiled"] = profiler is not None
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
                        restarted = ctx.apply_env(experiment.env_for(arm))
                        for fault, value in experiment.faults_for(arm).items():
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
                    record, rows = measure_phase(
                        ctx,
                        experiment,
                        arm,
                        phase,
                        quick,
                        out,
                        len(schedule),
                        time.monotonic() - began,
                        profiler,
                    )
                    records.append(record)
                    history += rows
            finally:
                if experiment.teardown is not None:
                    experiment.teardown(ctx)
    except BaseException as exc:  # keep what was measured, say why it stopped
        meta["aborted"] = f"{type(exc).__name__}: {exc}"
        meta["ended_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        meta |= profiler.meta() if profiler is not None else {}
        write_raw(out, meta, records, history)
        print(f"== ABORTED after {len(records)} phases: {meta['aborted']}; raw data in {out}")
        raise
    meta["ended_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["duration_s"] = round(time.monotonic() - began, 1)
    meta["context"] = ctx.data
    meta |= profiler.meta() if profiler is not None else {}
    write_raw(out, meta, records, history)
    write_stats(out, experiment, meta, records)
    writeup.write(out)
    print(f"== report: {out / 'report.md'}", flush=True)
    return out


def recompute(out: Path) -> Path:
    """stats.json (and the analysis) again from a folder's raw phases, then the report."""
    from experiments.framework import load as load_experiment

    meta = json.loads((out / "meta.json").read_text())
    records = [derive(r) for r in json.loads((out / "phases.json").read_text())]
    experiment = load_experiment(meta["experiment"])
    write_stats(out, experiment, meta, records)
    return writeup.write(out)
