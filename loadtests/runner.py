"""Runs one scenario file with Locust as a library: the Controller drives one run (Environment
+ LocalRunner, the executors of executors.py, live progress, thresholds and abortOnFail,
Prometheus metrics, the summary and the results folder). A file with several scenarios
(``scenarios:``) runs them concurrently in the same runner, one user class and one driver
greenlet per scenario, each from its startTime. The locustfile drives the same Controller from
Locust's events.

Importing this module imports Locust, which monkey-patches the process with gevent: import it
only in a process dedicated to load generation (``python -m loadtests run ...``).
"""

from __future__ import annotations

import datetime as dt
import functools
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import gevent
from locust.env import Environment
from locust.runners import STATE_STOPPED, Runner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter, stats_history

from loadtests import exporter, progress, report
from loadtests.executors import (
    ArrivalScheduler,
    StagesShape,
    class_vus,
    drive_closed_loop,
    drive_open_loop,
)
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
from loadtests.scenario import Scenario, Workload, format_duration
from loadtests.thresholds import Result, evaluate_all
from loadtests.users import RunContext, make_user_class, new_context, new_run_id

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID, EXIT_THRESHOLDS = 0, 1, 2, 98, 99
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def check_reachable(target: str) -> None:
    url = urlparse(target)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=3).close()
    except OSError as exc:
        raise ConnectionError(
            f"target {target} is not reachable ({exc.strerror or exc});"
            " is the stack up (make local, or the kind cluster)?"
        ) from None


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
    """One run: its figures, thresholds, progress and results. ``run()`` drives a whole run in
    this process (library mode); the locustfile drives the same object from Locust's events."""

    def __init__(self, ctx: RunContext, options: Options, env: Environment | None = None) -> None:
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

        self.writes_results = env is None or options.out_dir is not None
        # the one workload of a single-scenario file: the progress line, the stage and the
        # target follow it; with several, each has its own in the progress line and summary
        self.single: Workload | None = scenario.only
        self.shape: StagesShape | None = None
        if env is None:
            w = self.single
            user_classes = [make_user_class(ctx, self.target, wr) for wr in ctx.workloads.values()]
            if w is not None and not w.open_loop:
                self.shape = StagesShape(w.schedule, w.graceful_ramp_down, w.graceful_stop)
            env = Environment(
                user_classes=list(user_classes),
                shape_class=self.shape,
                host=self.target,
                locustfile=scenario.source,
                stop_timeout=w.graceful_stop if w is not None and not w.open_loop else None,
            )
            env.create_local_runner()
            if self.shape:
                self.shape.runner = env.runner
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
        return self.single.schedule.target_at(self.schedule_time)

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
            self.runner.user_classes_count,
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

    def finished(self, scheduler: ArrivalScheduler | None) -> bool:
        if self.aborted:
            return True
        if self.single is None:
            return all(wr.done for wr in self.ctx.workloads.values())
        if scheduler is None:
            return self.runner.state == STATE_STOPPED
        if not scheduler.finished:
            return False
        grace_over = self.elapsed() >= self.scenario.duration + self.single.graceful_stop
        return self.state.vus_busy == 0 or grace_over

    def run(self) -> int:
        opts = self.options
        self.out_dir.mkdir(parents=True, exist_ok=True)
        server = exporter.serve(self, opts.metrics_address) if opts.metrics_address else None
        csv_writer = StatsCSVFileWriter(
            self.env, PERCENTILES_TO_REPORT, str(self.out_dir / "locust"), full_history=True
        )
        self.monitor = GeneratorMonitor(lambda: self.schedule_end is None)
        greenlets = [
            gevent.spawn(csv_writer),
            gevent.spawn(stats_history, self.runner),
            gevent.spawn(self.monitor.run),
        ]

        s, w = self.scenario, self.single
        if w is not None:
            plan = f"{format_duration(s.duration)}, peak {w.schedule.peak:g} {w.unit}"
        else:
            plan = f"{format_duration(s.duration)}; " + ", ".join(
                f"{x.name} [{x.executor}] from {format_duration(x.start_time)}"
                f" for {format_duration(x.duration)}, peak {x.schedule.peak:g} {x.unit}"
                for x in s.workloads
            )
        opts.echo(
            f"running {s.name}{f' ({s.variant})' if s.variant else ''} [{s.executor}]"
            f" against {self.target}: {plan}"
            + (f", metrics on http://{opts.metrics_address}/metrics" if server else "")
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            gevent.signal_handler(sig, self.abort, f"interrupted by signal {sig.name}")

        scheduler: ArrivalScheduler | None = None
        if w is None:
            greenlets += self.start_workloads()
        else:
            wr = self.ctx.only
            if w.open_loop:
                assert wr.user_class is not None
                scheduler = ArrivalScheduler(self.runner, wr.user_class, wr)
                wr.scheduler = scheduler
                self.runner.start(w.pre_allocated_vus, spawn_rate=min(w.pre_allocated_vus, 100))
                while (
                    self.runner.user_count < w.pre_allocated_vus and self.runner.spawning_greenlet
                ):
                    gevent.sleep(0.05)
                self.state.vus_max_used = self.runner.user_count
            self.begin()
            if scheduler:
                greenlets.append(gevent.spawn(scheduler.run, self.t0))
            else:
                self.runner.start_shape()

        # Ticks once a second; near and after the schedule's end the loop looks every 50 ms, so
        # the end of the schedule is marked on time and the run ends with its last iteration.
        last_tick = time.perf_counter()
        while not self.finished(scheduler):
            gevent.sleep(1.0 if s.duration - self.elapsed() > 1.0 else 0.05)
            self.mark_schedule_end()
            if time.perf_counter() - last_tick >= 0.999:
                last_tick = time.perf_counter()
                self.tick()

        if self.aborted:  # an abort stops at once, in-flight iterations are interrupted
            self.env.stop_timeout = None  # type: ignore[assignment]
        if self.runner.state != STATE_STOPPED:
            self.runner.stop()
        for g in greenlets:
            g.kill(block=True)
        csv_writer.close_files()
        if self.raw is not None:
            self.raw.close()
        summary = self.finish()
        self.write_artifacts(summary)
        opts.echo(report.render(summary))
        if server and opts.linger:
            gevent.sleep(opts.linger)
        if server:
            server.stop()
        self.runner.quit()
        return int(summary["run"]["exit_code"])

    def start_workloads(self) -> list[gevent.Greenlet]:
        """Several workloads: pre-allocate every arrival-rate workload's VUs (as k6 does before
        the run), then start each workload's driver at its startTime."""
        runner = self.runner
        for wr in self.ctx.workloads.values():
            w, user_class = wr.workload, wr.user_class
            assert user_class is not None
            if w.open_loop:
                name = user_class.__name__
                wr.scheduler = ArrivalScheduler(
                    runner, user_class, wr, vus=functools.partial(class_vus, runner, name)
                )
                runner.spawn_users({name: w.pre_allocated_vus})
                wr.state.vus_max_used = w.pre_allocated_vus
        self.state.vus_max_used = runner.user_count
        self.begin()
        return [
            gevent.spawn(
                drive_open_loop if wr.workload.open_loop else drive_closed_loop,
                runner,
                wr,
                self.t0 + wr.workload.start_time,
            )
            for wr in self.ctx.workloads.values()
        ]

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


def run(scenario: Scenario, options: Options) -> int:
    check_reachable(options.target)
    return Controller(new_context(scenario, new_run_id()), options).run()
