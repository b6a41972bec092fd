"""Runs one scenario file in this process with Locust as a library: an Environment with a
LocalRunner, the VUs started by the executors (a LoadTestShape for a closed-loop workload, the
arrival scheduler for an open-loop one, a driver greenlet per workload when the file has
several, each from its startTime), the Controller ticked once a second, Prometheus metrics,
then the summary and the results folder.

Importing this module imports Locust, which monkey-patches the process with gevent: import it
only in a process dedicated to load generation (``python -m loadtests run ...``).
"""

from __future__ import annotations

import functools
import signal
import socket
import time
from urllib.parse import urlparse

import gevent
from locust.env import Environment
from locust.runners import STATE_STOPPED
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter, stats_history

from loadtests import exporter, report
from loadtests.controller import Controller, Options
from loadtests.executors import (
    ArrivalScheduler,
    StagesShape,
    class_vus,
    drive_closed_loop,
    drive_open_loop,
)
from loadtests.generator import GeneratorMonitor
from loadtests.scenario import Scenario, format_duration
from loadtests.users import RunContext, make_user_class, new_context, new_run_id


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


def local_environment(ctx: RunContext, target: str) -> Environment:
    """Locust's Environment and LocalRunner for a run in this process: the workloads' user
    classes and, for a single closed-loop workload, the shape that follows its VU curve."""
    w = ctx.scenario.only
    user_classes = [make_user_class(ctx, target, wr) for wr in ctx.workloads.values()]
    shape = None
    if w is not None and not w.open_loop:
        shape = StagesShape(w.schedule, w.graceful_ramp_down, w.graceful_stop)
    env = Environment(
        user_classes=list(user_classes),
        shape_class=shape,
        host=target,
        locustfile=ctx.scenario.source,
        stop_timeout=w.graceful_stop if w is not None and not w.open_loop else None,
    )
    env.create_local_runner()
    if shape:
        shape.runner = env.runner
    return env


def drive(ctl: Controller) -> int:
    """The whole run in this process: start the VUs by the executors, tick once a second
    until the schedule and its drain are over (or an abort), then the summary and the results."""
    opts = ctl.options
    ctl.out_dir.mkdir(parents=True, exist_ok=True)
    server = exporter.serve(ctl, opts.metrics_address) if opts.metrics_address else None
    csv_writer = StatsCSVFileWriter(
        ctl.env, PERCENTILES_TO_REPORT, str(ctl.out_dir / "locust"), full_history=True
    )
    ctl.monitor = GeneratorMonitor(lambda: ctl.schedule_end is None)
    greenlets = [
        gevent.spawn(csv_writer),
        gevent.spawn(stats_history, ctl.runner),
        gevent.spawn(ctl.monitor.run),
    ]

    s, w = ctl.scenario, ctl.single
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
        f" against {ctl.target}: {plan}"
        + (f", metrics on http://{opts.metrics_address}/metrics" if server else "")
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, ctl.abort, f"interrupted by signal {sig.name}")

    scheduler: ArrivalScheduler | None = None
    if w is None:
        greenlets += start_workloads(ctl)
    else:
        wr = ctl.ctx.only
        if w.open_loop:
            assert wr.user_class is not None
            scheduler = ArrivalScheduler(ctl.runner, wr.user_class, wr)
            wr.scheduler = scheduler
            ctl.runner.start(w.pre_allocated_vus, spawn_rate=min(w.pre_allocated_vus, 100))
            while ctl.runner.user_count < w.pre_allocated_vus and ctl.runner.spawning_greenlet:
                gevent.sleep(0.05)
            ctl.state.vus_max_used = ctl.runner.user_count
        ctl.begin()
        if scheduler:
            greenlets.append(gevent.spawn(scheduler.run, ctl.t0))
        else:
            ctl.runner.start_shape()

    # Ticks once a second; near and after the schedule's end the loop looks every 50 ms, so
    # the end of the schedule is marked on time and the run ends with its last iteration.
    last_tick = time.perf_counter()
    while not finished(ctl, scheduler):
        gevent.sleep(1.0 if s.duration - ctl.elapsed() > 1.0 else 0.05)
        ctl.mark_schedule_end()
        if time.perf_counter() - last_tick >= 0.999:
            last_tick = time.perf_counter()
            ctl.tick()

    if ctl.aborted:  # an abort stops at once, in-flight iterations are interrupted
        ctl.env.stop_timeout = None  # type: ignore[assignment]
    if ctl.runner.state != STATE_STOPPED:
        ctl.runner.stop()
    for g in greenlets:
        g.kill(block=True)
    csv_writer.close_files()
    if ctl.raw is not None:
        ctl.raw.close()
    summary = ctl.finish()
    ctl.write_artifacts(summary)
    opts.echo(report.render(summary))
    if server and opts.linger:
        gevent.sleep(opts.linger)
    if server:
        server.stop()
    ctl.runner.quit()
    return int(summary["run"]["exit_code"])


def start_workloads(ctl: Controller) -> list[gevent.Greenlet]:
    """Several workloads: pre-allocate every arrival-rate workload's VUs (as k6 does before
    the run), then start each workload's driver at its startTime."""
    runner = ctl.runner
    for wr in ctl.ctx.workloads.values():
        w, user_class = wr.workload, wr.user_class
        assert user_class is not None
        if w.open_loop:
            name = user_class.__name__
            wr.scheduler = ArrivalScheduler(
                runner, user_class, wr, vus=functools.partial(class_vus, runner, name)
            )
            runner.spawn_users({name: w.pre_allocated_vus})
            wr.state.vus_max_used = w.pre_allocated_vus
    ctl.state.vus_max_used = runner.user_count
    ctl.begin()
    return [
        gevent.spawn(
            drive_open_loop if wr.workload.open_loop else drive_closed_loop,
            runner,
            wr,
            ctl.t0 + wr.workload.start_time,
        )
        for wr in ctl.ctx.workloads.values()
    ]


def finished(ctl: Controller, scheduler: ArrivalScheduler | None) -> bool:
    """Whether the run is over: aborted, every workload done, Locust's shape stopped, or the
    scheduler done and its iterations finished (or their gracefulStop over)."""
    if ctl.aborted:
        return True
    if ctl.single is None:
        return all(wr.done for wr in ctl.ctx.workloads.values())
    if scheduler is None:
        return ctl.runner.state == STATE_STOPPED
    if not scheduler.finished:
        return False
    grace_over = ctl.elapsed() >= ctl.scenario.duration + ctl.single.graceful_stop
    return ctl.state.vus_busy == 0 or grace_over


def run(scenario: Scenario, options: Options) -> int:
    check_reachable(options.target)
    ctx = new_context(scenario, new_run_id())
    env = local_environment(ctx, options.target)
    return drive(Controller(ctx, options, env, writes_results=True))
