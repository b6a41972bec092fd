"""One load-test run's bookkeeping (the Controller): what it measured so far, its thresholds and
abortOnFail, the progress lines, the per-second history, the summary and the results folder.
It starts no user and waits for nothing: the runner (this process) or the locustfile
(Locust's command line) drives it."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locust.env import Environment
from locust.runners import MasterRunner, Runner

from loadtests import progress
from loadtests.figures import (
    PERCENTILES,
    Figures,
    check_rows,
    describe,
    endpoint_rows,
    record_requests,
    rounded,
    trend_figures,
    workload_summary,
)
from loadtests.generator import GeneratorMonitor, combine
from loadtests.metrics import PERCENTILE_DEFINITION, Window
from loadtests.results import RawWriter, git_revision, machine, write_artifacts
from loadtests.scenario import Workload
from loadtests.thresholds import Result, evaluate_all
from loadtests.users import RunContext

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID, EXIT_THRESHOLDS = 0, 1, 2, 98, 99
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Options:
    target: str
    out_dir: Path | None = None
    metrics_address: str | None = "127.0.0.1:19105"  # None: no /metrics endpoint
    progress_every: float = 5.0
    linger: float = (
        0.0  # keep /metrics up this long after the run (so the last scrape sees the end)
    )
    echo: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    raw: Path | None = None  # every request as a line of CSV or JSON (by the file's extension)


class Controller:
    """One run's bookkeeping: its live figures, thresholds and abortOnFail, progress lines, history,
    summary and results folder. The runner drives it in this process (``python -m loadtests
    run``); the locustfile drives the same object from Locust's events (web UI, master and
    workers)."""

    def __init__(
        self, ctx: RunContext, options: Options, env: Environment, writes_results: bool = False
    ) -> None:
        scenario = ctx.scenario
        self.ctx = ctx
        self.scenario = scenario
        self.options = options
        self.target = options.target
        self.started_wall = dt.datetime.now(dt.UTC)
        self.run_id = ctx.run_id
        suffix = f"{scenario.name}" + (f"-{scenario.variant}" if scenario.variant else "")
        self.out_dir = (
            options.out_dir
            or RESULTS_DIR / f"{self.started_wall.strftime('%Y%m%d-%H%M%S')}-{suffix}"
        )
        self.state = ctx.state
        self.running = False
        self.t0 = 0.0
        self.aborted: str | None = None
        self.breaking_point: dict[str, Any] | None = None
        self.threshold_results: list[Result] = []
        self.history: list[dict[str, Any]] = []
        self.schedule_end: dict[str, int] | None = None
        self.monitor: GeneratorMonitor | None = None
        self.worker_generators: list[dict[str, Any]] = []  # distributed: each worker's verdict

        # this process drives the whole run (python -m loadtests run), or the folder was asked for
        self.writes_results = writes_results or options.out_dir is not None
        # the one workload of a single-scenario file: the progress line, the stage and the
        # target follow it; with several, each has its own in the progress line and summary
        self.single: Workload | None = scenario.only
        self.env = env
        self.raw = RawWriter(options.raw) if options.raw else None
        record_requests(env, ctx, self.raw)
        self.figures = Figures(ctx, self.schedule_seconds)

    @property
    def runner(self) -> Runner:
        assert self.env.runner is not None
        return self.env.runner

    # -- live figures

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0 if self.t0 else 0.0

    @property
    def schedule_time(self) -> float:
        return min(self.elapsed(), self.scenario.duration)

    @property
    def stage_number(self) -> int:
        """The single workload's current stage (1-based); 0 with several workloads."""
        if self.single is None:
            return 0
        return self.single.schedule.stage_at(self.schedule_time) + 1

    @property
    def target_now(self) -> float:
        """The single workload's current target; 0 with several workloads."""
        if self.single is None:
            return 0.0
        return self.single.target_at(self.elapsed())

    def class_vus(self) -> dict[str, int]:
        """Running VUs by user class; a master counts what its workers last reported."""
        runner = self.runner
        if isinstance(runner, MasterRunner):
            return dict(runner.reported_user_classes_count)
        return runner.user_classes_count

    def workload_vus(self) -> dict[str, int]:
        """Each workload's running VUs (its own user class's when there are several)."""
        runner = self.env.runner
        if runner is None:
            return dict.fromkeys(self.ctx.workloads, 0)
        if len(self.ctx.workloads) == 1:
            return dict.fromkeys(self.ctx.workloads, runner.user_count)
        by_class = self.class_vus()
        return {
            name: by_class.get(getattr(wr.user_class, "__name__", ""), 0)
            for name, wr in self.ctx.workloads.items()
        }

    def schedule_seconds(self, scenario: str | None = None) -> float:
        """The elapsed part of the schedule, or of one workload's: what rates divide by (the
        drain is not load)."""
        if scenario is None:
            return min(self.elapsed(), self.scenario.duration)
        w = self.scenario.workload(scenario)
        return min(max(self.elapsed() - w.start_time, 0.0), w.duration)

    def snapshot(self, window: Window | None = None) -> dict[str, Any]:
        """The live figures; rates and percentiles over ``window`` (default: the current
        second so far)."""
        window = window or self.state.second
        span = max(time.monotonic() - window.began, 1e-9)
        p = rounded(window.duration.percentiles(PERCENTILES))
        d = rounded(window.start_delay.percentiles((50.0, 95.0, 100.0)))
        return {
            "elapsed_s": round(self.elapsed(), 2),
            "stage": self.stage_number if self.single else None,
            "target": round(self.target_now, 3) if self.single else None,
            "unit": self.single.unit if self.single else None,
            "vus": self.runner.user_count,
            "vus_busy": self.state.vus_busy,
            "iterations_per_s": round(self.state.recent_start_rate(5.0), 3),
            "requests_per_s": round(window.requests / span, 3),
            "failures_per_s": round(window.failures / span, 3),
            "p50_ms": p[50.0],
            "p95_ms": p[95.0],
            "p99_ms": p[99.0],
            "start_delay_p50_ms": d[50.0],
            "start_delay_p95_ms": d[95.0],
            "start_delay_max_ms": d[100.0],
            "generator_cpu": None,
            "loop_lag_p50_ms": None,
            "loop_lag_p99_ms": None,
            "requests": self.state.requests,
            "failures": self.state.failures,
            "iterations": sum(self.state.iterations.values()),
            "dropped": self.state.dropped,
        }

    def progress_line(self, snap: dict[str, Any]) -> str:
        return progress.progress_line(
            snap,
            self.single,
            self.ctx.workloads.values(),
            self.class_vus(),
            self.elapsed(),
        )

    # -- control

    def evaluate(self) -> None:
        self.threshold_results = evaluate_all(self.scenario.thresholds, self.figures)
        if self.aborted:
            return
        for result in self.threshold_results:
            t = result.threshold
            if (
                t.abort_on_fail
                and not result.ok
                and result.observed is not None
                and self.elapsed() >= t.delay_abort_eval
            ):
                snap = self.snapshot()
                self.breaking_point = {
                    "elapsed_s": snap["elapsed_s"],
                    "stage": snap["stage"],
                    "target": snap["target"],
                    "unit": snap["unit"],
                    "achieved_iterations_per_s": snap["iterations_per_s"],
                    "requests_per_s": snap["requests_per_s"],
                    "vus": snap["vus"],
                    "threshold": str(t),
                    "observed": result.describe(),
                }
                self.abort(f"threshold {t} crossed ({result.describe()})")
                return

    def abort(self, reason: str) -> None:
        if not self.aborted:
            self.aborted = reason
            self.options.echo(f"aborting: {reason}")

    def begin(self) -> None:
        self.state.started = time.monotonic()
        for wr in self.ctx.workloads.values():  # a workload's achieved rate is from its start
            wr.state.started = self.state.started + wr.workload.start_time
        self.state.next_second()
        self.state.next_progress()
        self.t0 = time.perf_counter()
        self.running = True
        self.next_progress = 0.0

    def tick(self) -> None:
        """Once a second while running: record the history, judge thresholds, show progress."""
        self.state.vus_max_used = max(self.state.vus_max_used, self.runner.user_count)
        self.mark_schedule_end()
        snap = self.snapshot(self.state.next_second())
        if self.monitor is not None and self.monitor.last is not None:
            cpu, lag50, lag99 = self.monitor.last
            snap["generator_cpu"], snap["loop_lag_p50_ms"] = round(cpu, 3), round(lag50, 3)
            snap["loop_lag_p99_ms"] = round(lag99, 3)
        self.history.append(snap)
        self.evaluate()
        if self.options.progress_every and self.elapsed() >= self.next_progress:
            line = self.progress_line(
                self.snapshot(self.state.next_progress())
                | {k: snap[k] for k in ("generator_cpu", "loop_lag_p50_ms", "loop_lag_p99_ms")}
            )
            self.options.echo(line)
            self.next_progress = self.elapsed() + self.options.progress_every

    def mark_schedule_end(self) -> None:
        """Counts at the end of the schedule, so the drain after it is reported separately."""
        if self.schedule_end is None and self.elapsed() >= self.scenario.duration:
            self.schedule_end = {
                "requests": self.state.requests,
                "iterations_finished": self.finished_iterations(),
            }

    def finished_iterations(self) -> int:
        return sum(t.count for t in self.state.iteration_duration.values())

    def finish(self) -> dict[str, Any]:
        elapsed = self.elapsed()
        self.running = False
        self.evaluate()
        return self.summary(elapsed)

    def summary(self, elapsed: float) -> dict[str, Any]:
        s = self.scenario
        state = self.state
        seconds = min(elapsed, s.duration)
        self.mark_schedule_end()
        at_end = self.schedule_end or {
            "requests": state.requests,
            "iterations_finished": self.finished_iterations(),
        }
        generator = self.monitor.verdict() if self.monitor else combine(self.worker_generators)
        failed = [r for r in self.threshold_results if not r.ok]
        exit_code = EXIT_THRESHOLDS if failed or (self.aborted and self.breaking_point) else EXIT_OK
        if generator and not generator["valid"]:
            exit_code = EXIT_INVALID  # the figures are partly the generator's own queueing
        if self.aborted and not self.breaking_point:
            exit_code = EXIT_ERROR  # interrupted: not a verdict on the system
        iterations = sum(state.iterations.values())
        delay = trend_figures(state.start_delay if state.start_delay.count else None)
        w = self.single
        return {
            "scenario": {
                "name": s.name,
                "variant": s.variant,
                "source": s.source,
                "executor": s.executor,
                "description": s.description,
                "definition": s.raw,
            },
            "target": self.target,
            "run": {
                "id": self.run_id,
                "started_at": self.started_wall.isoformat(timespec="seconds"),
                "ended_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "duration_s": round(elapsed, 3),
                "schedule_s": round(seconds, 3),
                "aborted": bool(self.aborted),
                "abort_reason": self.aborted,
                "valid": generator["valid"] if generator else None,
                "exit_code": exit_code,
                "command": sys.argv,
            },
            "git": git_revision(),
            "machine": machine(),
            "load": {
                "unit": w.unit if w else None,
                "target_peak": w.schedule.peak if w else None,
                "iterations": iterations,
                "iterations_per_s": iterations / seconds if seconds > 0 else 0.0,
                "dropped_iterations": state.dropped,
                "interrupted_iterations": state.interrupted,
                "vus_max_used": state.vus_max_used,
                "max_vus": (w.max_vus if w else sum(x.max_vus for x in s.workloads)) or None,
                "iteration_duration": trend_figures(
                    state.merged_iteration_duration() if state.iteration_duration else None
                ),
                "iteration_start_delay": delay,
            },
            "drain": {
                "seconds": round(max(elapsed - seconds, 0.0), 3),
                "requests": state.requests - at_end["requests"],
                "iterations_finished": self.finished_iterations() - at_end["iterations_finished"],
            },
            "data": {
                "sent": state.data_sent,
                "received": state.data_received,
                "sent_per_s": state.data_sent / seconds if seconds > 0 else 0.0,
                "received_per_s": state.data_received / seconds if seconds > 0 else 0.0,
            },
            **endpoint_rows(state, seconds),
            "generator": generator,
            "checks": check_rows(state),
            "scenarios": [workload_summary(wr, elapsed) for wr in self.ctx.workloads.values()],
            "thresholds": [describe(r) for r in self.threshold_results],
            "breaking_point": self.breaking_point,
            "artifacts": {"dir": str(self.out_dir) if self.writes_results else None},
            "percentile_definition": PERCENTILE_DEFINITION,
        }

    def write_artifacts(self, summary: dict[str, Any]) -> None:
        write_artifacts(self.out_dir, summary, self.history, self.env)
