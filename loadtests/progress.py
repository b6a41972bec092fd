"""The live progress line a run prints every few seconds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from loadtests import report
from loadtests.generator import GeneratorMonitor
from loadtests.scenario import Workload, format_duration

if TYPE_CHECKING:
    from loadtests.users import WorkloadRun


def workload_progress(wr: WorkloadRun, vus: int, t: float) -> str:
    """One workload's part of a progress line (runs with several workloads), ``t`` seconds
    into the run."""
    w = wr.workload
    if t < w.start_time:
        return f"{w.name}: starts at {format_duration(w.start_time)}"  # startTime > 0 here
    if wr.done or t >= w.end:
        busy = wr.state.vus_busy
        return f"{w.name}: done" + (f", {busy} iterations in flight" if busy else "")
    target = w.schedule.target_at(t - w.start_time)
    if w.open_loop:
        return (
            f"{w.name}: target {target:.1f}/s achieved"
            f" {wr.state.recent_start_rate(5.0):.1f}/s VUs {wr.state.vus_busy}/{vus}"
        )
    return f"{w.name}: VUs {vus}/{round(target)}"


def progress_line(
    snap: dict[str, Any],
    single: Workload | None,
    workloads: Iterable[WorkloadRun],
    class_vus: Mapping[str, int],
    elapsed: float,
) -> str:
    """The progress line of a snapshot: the single workload's stage, target and achieved load,
    or each workload's (``class_vus``: VUs by user class); requests, p95, errors, dropped
    iterations and start delay, and the generator's own CPU and loop lag with a warning when
    it is saturated."""
    w = single
    workloads = list(workloads)
    if w is None:
        load = "  ".join(
            workload_progress(wr, class_vus.get(getattr(wr.user_class, "__name__", ""), 0), elapsed)
            for wr in workloads
        )
        line = f"[{format_duration(int(snap['elapsed_s'])):>7}] {load}"
    else:
        if w.open_loop and snap["elapsed_s"] > w.duration:
            grace = format_duration(w.graceful_stop)
            load = f"schedule done, {snap['vus_busy']} iterations in flight (gracefulStop {grace})"
        elif w.open_loop:
            load = (
                f"target {snap['target']:.1f}/s  achieved {snap['iterations_per_s']:.1f}/s"
                f"  VUs {snap['vus_busy']}/{snap['vus']} (max {w.max_vus})"
            )
        else:
            load = (
                f"VUs {snap['vus']}/{round(snap['target'])}  iters {snap['iterations_per_s']:.1f}/s"
            )
        line = (
            f"[{format_duration(int(snap['elapsed_s'])):>7}]"
            f" stage {snap['stage']}/{len(w.schedule.stages)}  {load}"
        )
    errors = snap["failures"] / snap["requests"] * 100 if snap["requests"] else 0.0
    line += (
        f"  req {snap['requests_per_s']:.1f}/s  p95 {report.ms(snap['p95_ms'])}"
        f"  errors {errors:.2f}%"
    )
    if any(wr.workload.open_loop for wr in workloads):
        line += (
            f"  dropped {snap['dropped']}  start delay p50/p95/max"
            f" {report.ms(snap['start_delay_p50_ms'])}/{report.ms(snap['start_delay_p95_ms'])}"
            f"/{report.ms(snap['start_delay_max_ms'])}"
        )
    cpu, lag50, lag99 = (
        snap.get("generator_cpu"),
        snap.get("loop_lag_p50_ms"),
        snap.get("loop_lag_p99_ms"),
    )
    if cpu is not None and lag50 is not None and lag99 is not None:
        line += f"  generator CPU {cpu:.0%} loop lag p50/p99 {report.ms(lag50)}/{report.ms(lag99)}"
        if GeneratorMonitor.saturated(cpu, lag50):
            line += "  WARNING: generator saturated, latencies include its own waiting"
        elif lag99 >= GeneratorMonitor.LAG_WARNING_MS:
            line += "  warning: generator's event loop lags (CPU shared with other work?)"
    return line
