"""Runs one scenario file with Locust as a library: Environment + LocalRunner, FastHttpUser
virtual users, a LoadTestShape for the closed-loop executors and an arrival scheduler for the
open-loop ones; live progress, abortOnFail, Prometheus metrics, results folder and summary.
A file with several scenarios (``scenarios:``) runs them concurrently in the same runner, one
user class and one driver greenlet per scenario, each from its startTime.

Importing this module imports Locust, which monkey-patches the process with gevent: import it
only in a process dedicated to load generation (``python -m loadtests run ...``).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import importlib
import itertools
import json
import logging
import math
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import gevent
import locust
import psutil
from gevent.event import AsyncResult
from locust import LoadTestShape, between, constant, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment
from locust.html import get_html_report
from locust.runners import STATE_STOPPED, Runner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter, stats_history
from locust.user.task import LOCUST_STATE_STOPPING

from loadtests import exporter, report
from loadtests.journeys import BUILTIN, Catalog
from loadtests.metrics import PERCENTILE_DEFINITION, RunState, Trend, Window, merged
from loadtests.scenario import Scenario, ScenarioError, Workload, format_duration
from loadtests.schedule import Schedule
from loadtests.thresholds import Result, evaluate_all

log = logging.getLogger("loadtests")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID, EXIT_THRESHOLDS = 0, 1, 2, 98, 99
RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


# --- journeys and virtual users -------------------------------------------------------------


def resolve_journey(name: str) -> Callable[[Any], None]:
    if name in BUILTIN:
        return BUILTIN[name]
    module_name, _, attr = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ScenarioError(f"journey {name!r}: cannot import: {exc}") from None
    if not callable(fn):
        raise ScenarioError(f"journey {name!r} is not a function")
    return fn


@dataclass
class WorkloadRun:
    """One workload of the run (an entry of ``scenarios:``): its journeys, its VUs' class, its
    driver and its own figures."""

    workload: Workload
    state: RunState  # its own figures; the run's own state when it is the only workload
    states: tuple[RunState, ...]  # where its VUs record: the run's state and its own
    journeys: list[tuple[str, Callable[[Any], None]]]
    weights: list[float]
    scheduler: ArrivalScheduler | None = None
    user_class: type[JourneyUser] | None = None
    done: bool = False  # its schedule and its gracefulStop are over, its VUs stopped


@dataclass
class RunContext:
    scenario: Scenario
    state: RunState  # the whole run's figures
    run_id: str
    workloads: dict[str, WorkloadRun]
    catalog: Catalog
    vu_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def only(self) -> WorkloadRun:
        """The workload of a single-scenario file (the Locust command line runs only those)."""
        [wr] = self.workloads.values()
        return wr


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S") + f"{random.randrange(16**6):06x}"


def new_context(scenario: Scenario, run_id: str) -> RunContext:
    state = RunState()
    single = len(scenario.workloads) == 1
    workloads = {}
    for w in scenario.workloads:
        own = state if single else RunState()
        workloads[w.name] = WorkloadRun(
            workload=w,
            state=own,
            states=(state,) if single else (state, own),
            journeys=[(name, resolve_journey(name)) for name in w.journeys],
            weights=list(w.journeys.values()),
        )
    return RunContext(
        scenario=scenario,
        state=state,
        run_id=run_id,
        workloads=workloads,
        catalog=Catalog(scenario.catalog_size),
    )


def make_user_class(ctx: RunContext, host: str | None, wr: WorkloadRun) -> type[JourneyUser]:
    """A workload's virtual-user class: open-loop VUs wait for the scheduler, closed-loop VUs
    loop over iterations with think time between them."""
    w = wr.workload
    base = OpenLoopUser if w.open_loop else ClosedLoopUser
    attrs: dict[str, Any] = {
        "abstract": False,
        "ctx": ctx,
        "wr": wr,
        "host": host,
        "network_timeout": ctx.scenario.http_timeout,
        "connection_timeout": ctx.scenario.http_timeout,
    }
    if not w.open_loop:
        attrs["wait_time"] = between(*w.think_time)
    name = "VirtualUser" if len(ctx.workloads) == 1 else f"VirtualUser_{w.name}"
    wr.user_class = type(name, (base,), attrs)
    return wr.user_class


class JourneyUser(FastHttpUser):
    """A virtual user: its own HTTP connections, customer id, rate-limit client id and RNG."""

    abstract = True
    ctx: RunContext
    wr: WorkloadRun

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.vu_id = next(self.ctx.vu_ids)
        self.customer_id = f"lt-{self.ctx.run_id}-{self.vu_id}"
        self.headers = {"X-Client-Id": self.customer_id}
        self.rng = random.Random()
        self.catalog = self.ctx.catalog
        self.pending: float | None = None  # an iteration handed over before this VU started
        self.slot: AsyncResult | None = None

    # the VU interface journeys use (loadtests.journeys.VU)
    def get(self, path: str, name: str) -> Any:
        return self.client.get(path, name=name, headers=self.headers)

    def post(self, path: str, name: str, json: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            path, name=name, json=json, headers={**self.headers, **(headers or {})}
        )

    def context(self) -> dict[str, Any]:
        """Tags every request with its workload (k6's ``scenario`` tag)."""
        return {"scenario": self.wr.workload.name}

    def think(self) -> None:
        low, high = self.wr.workload.think_time
        if high > 0:
            gevent.sleep(self.rng.uniform(low, high))

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def check(self, name: str, ok: bool) -> bool:
        for state in self.wr.states:
            state.check(name, ok)
        return ok

    def run_iteration(self, scheduled: float | None) -> None:
        """One iteration; ``scheduled`` is its planned start (perf_counter) for open-loop runs."""
        states = self.wr.states
        name, journey = self.rng.choices(self.wr.journeys, weights=self.wr.weights)[0]
        started = time.perf_counter()
        origin = started if scheduled is None else min(scheduled, started)
        delay = None if scheduled is None else (started - origin) * 1000
        for state in states:
            state.iteration_started(name, delay_ms=delay)
            state.vus_busy += 1
        completed = False
        try:
            journey(self)
            completed = True
        except gevent.GreenletExit:
            for state in states:
                state.interrupted += 1
            raise
        finally:
            duration = (time.perf_counter() - origin) * 1000
            for state in states:
                state.vus_busy -= 1
                if completed:
                    state.iteration_finished(name, duration)


class ClosedLoopUser(JourneyUser):
    abstract = True

    @task
    def iterate(self) -> None:
        self.run_iteration(None)


class OpenLoopUser(JourneyUser):
    abstract = True
    wait_time = constant(0)

    @task
    def iterate(self) -> None:
        while self.wr.scheduler is None:  # a worker whose start message is still on its way
            gevent.sleep(0.1)
        self.run_iteration(self.wr.scheduler.take(self))


# --- executors -------------------------------------------------------------------------------


class StagesShape(LoadTestShape):
    """ramping-vus / constant-vus: Locust's own shape mechanism follows the VU curve each second."""

    abstract = True  # instantiated directly, never discovered from a locustfile

    def __init__(
        self, schedule: Schedule, ramp_down: float | None = None, stop: float | None = None
    ) -> None:
        """``ramp_down``/``stop``: how long VUs removed by a falling stage / by the end of the
        schedule may finish their iteration (gracefulRampDown / gracefulStop)."""
        super().__init__()
        self.schedule = schedule
        self.ramp_down, self.stop = ramp_down, stop
        self.last: tuple[int, float] | None = None

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        timeout = self.stop if t >= self.schedule.duration else self.ramp_down
        if self.runner is not None and timeout is not None:
            # Locust gives every stopped VU env.stop_timeout to finish its iteration
            self.runner.environment.stop_timeout = timeout
        if t >= self.schedule.duration:
            return None
        users = round(self.schedule.target_at(t))
        if self.last is None or users != self.last[0]:
            # fast enough to reach the new count well within the one-second tick; the tuple only
            # changes with the count, so Locust is not asked to re-dispatch every second for nothing
            stage = self.schedule.stages[self.schedule.stage_at(t)]
            slope = abs(stage.target - self.schedule.target_at(t - 1)) if t >= 1 else 0.0
            change = abs(users - (self.last[0] if self.last else 0))
            self.last = (users, float(min(max(change * 2, slope * 2, 1), 100)))
        return self.last


class ArrivalScheduler:
    """constant-/ramping-arrival-rate: starts iteration k at its scheduled time whatever the
    system's latency; hands it to an idle VU, starts a new VU while fewer than maxVUs exist, and
    otherwise drops it (counted, never queued: a queue would hide latency again)."""

    def __init__(
        self,
        runner: Runner,
        user_class: type[JourneyUser],
        wr: WorkloadRun,
        index: int = 0,
        count: int = 1,
        vus: Callable[[], int] | None = None,
    ) -> None:
        """``index``/``count``: this process is generator ``index`` of ``count`` (Locust
        workers); it takes every ``count``-th iteration of the whole schedule, starting at the
        ``index``-th, and 1/``count`` of maxVUs. ``vus``: how many VUs the workload has (by
        default every VU of the runner: a single-workload run)."""
        self.runner = runner
        self.user_class = user_class
        self.wr = wr
        self.index, self.count = index, count
        self.schedule = wr.workload.schedule
        self.max_vus = max(1, math.ceil(wr.workload.max_vus / count))
        self.vus = vus or (lambda: runner.user_count)
        self.idle: deque[JourneyUser] = deque()
        self.finished = False

    def take(self, vu: JourneyUser) -> float:
        """Called by a VU's greenlet: block until the scheduler hands it an iteration."""
        if vu.pending is not None:
            scheduled, vu.pending = vu.pending, None
            return scheduled
        vu.slot = AsyncResult()
        self.idle.append(vu)
        return float(vu.slot.get())

    def dispatch(self, scheduled: float) -> None:
        while self.idle:
            vu = self.idle.popleft()
            if vu.slot is not None and not vu.greenlet.dead:
                vu.slot.set(scheduled)
                return
        if self.vus() < self.max_vus:
            [vu] = self.runner.spawn_users({self.user_class.__name__: 1})
            vu.pending = scheduled
            for state in self.wr.states:
                state.vus_max_used = max(state.vus_max_used, self.vus())
            return
        for state in self.wr.states:
            state.dropped += 1

    def run(self, started_at: float) -> None:
        for offset in self.schedule.iteration_times(self.index, self.count):
            due = started_at + offset
            delay = due - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            self.dispatch(due)
        remaining = started_at + self.schedule.duration - time.perf_counter()
        if remaining > 0:
            gevent.sleep(remaining)
        self.finished = True


# Several workloads (``scenarios:``) share one Locust runner, each with its own user class and a
# driver greenlet of its own from its startTime; Locust's shape and stop_timeout are one per
# environment, so the drivers spawn and stop their own class's VUs.


def class_vus(runner: Runner, class_name: str) -> int:
    return runner.user_classes_count.get(class_name, 0)


def users_of(runner: Runner, user_class: type[JourneyUser]) -> list[JourneyUser]:
    return [
        g.args[0] for g in list(runner.user_greenlets) if g.args and type(g.args[0]) is user_class
    ]


def stop_vus(users: list[JourneyUser], timeout: float) -> None:
    """Stop VUs, each after its current iteration, for up to ``timeout`` seconds (its
    workload's gracefulRampDown or gracefulStop); then kill those still running."""
    for user in users:
        if user.greenlet.dead:
            continue
        if timeout <= 0:
            user.stop(force=True)
        elif user._state != LOCUST_STATE_STOPPING:
            user.stop(force=False)
    gevent.joinall([u.greenlet for u in users], timeout=timeout)
    for user in users:
        if not user.greenlet.dead:
            user.stop(force=True)


def sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        gevent.sleep(delay)


def drive_closed_loop(runner: Runner, wr: WorkloadRun, started_at: float) -> None:
    """ramping-vus / constant-vus among several workloads: follow the VU curve once a second
    from ``started_at`` (the run's start plus startTime), as StagesShape does for one."""
    w, user_class = wr.workload, wr.user_class
    assert user_class is not None
    sleep_until(started_at)
    vus: list[JourneyUser] = []
    while (t := time.perf_counter() - started_at) < w.duration:
        vus = [u for u in vus if not u.greenlet.dead]
        want = round(w.schedule.target_at(t))
        if want > len(vus):
            vus += runner.spawn_users({user_class.__name__: want - len(vus)})
        elif want < len(vus):
            gevent.spawn(stop_vus, vus[want:], w.graceful_ramp_down)
            vus = vus[:want]
        wr.state.vus_max_used = max(wr.state.vus_max_used, len(vus))
        gevent.sleep(min(1.0, w.duration - t))
    stop_vus(users_of(runner, user_class), w.graceful_stop)
    wr.done = True


def drive_open_loop(runner: Runner, wr: WorkloadRun, started_at: float) -> None:
    """An arrival-rate workload among several: its scheduler from ``started_at``, then its
    gracefulStop for the iterations in flight, then its VUs stop."""
    w, scheduler = wr.workload, wr.scheduler
    assert scheduler is not None and wr.user_class is not None
    scheduler.run(started_at)
    deadline = started_at + w.duration + w.graceful_stop
    while wr.state.vus_busy and time.perf_counter() < deadline:
        gevent.sleep(0.05)
    stop_vus(users_of(runner, wr.user_class), 0)
    wr.done = True


# --- figures for thresholds and the summary --------------------------------------------------


def wire_sizes(response: Any, body_length: int) -> tuple[int, int]:
    """Bytes of one exchange as HTTP/1.1 put them on the connection: the request the client
    sent (request line, headers, body) and the response (status line, headers, body as
    received); TCP and TLS overhead are not counted."""
    head = getattr(response, "_sent_request", None) or ""  # request line and headers only
    body = _CONTENT_LENGTH.search(head)
    sent = len(head) + (int(body[1]) if body else 0)
    headers = getattr(response, "headers", None)
    received = body_length
    if headers:
        received += len("HTTP/1.1 200 OK\r\n\r\n") + sum(
            len(k) + len(v) + 4 for k, v in headers.items()
        )
    return sent, received


_CONTENT_LENGTH = re.compile(r"^content-length:\s*(\d+)", re.IGNORECASE | re.MULTILINE)


def record_requests(env: Environment, ctx: RunContext, raw: RawWriter | None = None) -> None:
    """Every request into the run state and its workload's (HDR histograms per endpoint,
    bytes), whatever Locust keeps for its own report; and into ``raw`` when given."""
    routes = {name: wr.states for name, wr in ctx.workloads.items()}
    default = (ctx.state,)

    def on_request(
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: BaseException | None = None,
        response: Any = None,
        context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        sent, received = wire_sizes(response, response_length or 0)
        failed = exception is not None
        scenario = (context or {}).get("scenario", "")
        for state in routes.get(scenario, default):
            state.request(request_type, name, response_time, failed, sent, received)
        if raw is not None:
            started = kwargs.get("start_time") or time.time() - response_time / 1000
            row = (round(started, 6), request_type, name, round(response_time, 3))
            raw.write((*row, int(failed), sent, received, scenario))

    env.events.request.add_listener(on_request)


class Figures:
    """thresholds.MetricSource over the run state, or a workload's state when the threshold
    names a ``scenario``. Counter rates divide by ``seconds(scenario)``: the elapsed part of
    the schedule, or of that workload's schedule (the drain after it is not load)."""

    def __init__(self, ctx: RunContext, seconds: Callable[[str | None], float]) -> None:
        self.ctx = ctx
        self.seconds = seconds

    def state_of(self, tags: Mapping[str, str]) -> RunState:
        scenario = tags.get("scenario")
        return self.ctx.state if scenario is None else self.ctx.workloads[scenario].state

    def trend(self, metric: str, tags: Mapping[str, str]) -> Trend | None:
        state = self.state_of(tags)
        if metric == "iteration_duration":
            return state.merged_iteration_duration(tags.get("journey"))
        if metric == "iteration_start_delay":
            return state.start_delay
        return state.http_duration(tags.get("name"), tags.get("method"))

    def rate(self, metric: str, tags: Mapping[str, str]) -> tuple[int, int]:
        state = self.state_of(tags)
        if metric == "checks":
            items = [v for k, v in state.checks.items() if tags.get("check") in (None, k)]
            return sum(p for p, _ in items), sum(p + f for p, f in items)
        chosen = state.select(tags.get("name"), tags.get("method"))
        return sum(e.failures for e in chosen), sum(e.requests for e in chosen)

    def counter(self, metric: str, tags: Mapping[str, str]) -> tuple[float, float]:
        state = self.state_of(tags)
        seconds = self.seconds(tags.get("scenario"))
        if metric == "dropped_iterations":
            return state.dropped, seconds
        if metric == "iterations":
            return sum(
                n for j, n in state.iterations.items() if tags.get("journey") in (None, j)
            ), seconds
        if metric in ("data_sent", "data_received"):
            return float(getattr(state, metric)), seconds
        chosen = state.select(tags.get("name"), tags.get("method"))
        return sum(e.requests for e in chosen), seconds


def describe(result: Result) -> dict[str, Any]:
    t = result.threshold
    return {
        "metric": t.key,
        "condition": t.condition,
        "ok": result.ok,
        "observed": result.describe(),
        "value": result.observed,
        "abort_on_fail": t.abort_on_fail,
    }


PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def _rounded(values: dict[float, float | None]) -> dict[float, float | None]:
    return {k: None if v is None else round(v, 3) for k, v in values.items()}


def trend_figures(trend: Trend | None) -> dict[str, float | None]:
    """min, med, avg, p90, p95, p99, max of a trend (ms); None without samples."""
    if trend is None or not trend.count:
        return dict.fromkeys(("min", "med", "avg", "p90", "p95", "p99", "max"))
    p = trend.percentiles(PERCENTILES)
    return {
        "min": trend.min,
        "med": p[50.0],
        "avg": trend.avg,
        "p90": p[90.0],
        "p95": p[95.0],
        "p99": p[99.0],
        "max": trend.max,
    }


def endpoint_row(
    method: str, name: str, requests: int, failures: int, duration: Trend | None, seconds: float
) -> dict[str, Any]:
    figures = trend_figures(duration)
    return {
        "name": name,
        "method": method,
        "requests": requests,
        "failures": failures,
        "failure_rate": failures / requests if requests else 0.0,
        "rate": requests / seconds if seconds > 0 else 0.0,
        **figures,
        "p50": figures["med"],  # the same figure under its percentile name
    }


def endpoint_rows(state: RunState, seconds: float) -> dict[str, Any]:
    """``endpoints`` (one row per method and name) and their ``total``."""
    endpoints = sorted(state.endpoints.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    return {
        "endpoints": [
            endpoint_row(m, n, e.requests, e.failures, e.duration, seconds)
            for (m, n), e in endpoints
        ],
        "total": endpoint_row(
            "",
            "TOTAL",
            state.requests,
            state.failures,
            merged(e.duration for e in state.endpoints.values()),
            seconds,
        ),
    }


def check_rows(state: RunState) -> list[dict[str, Any]]:
    return [{"name": k, "passes": v[0], "fails": v[1]} for k, v in sorted(state.checks.items())]


# --- the run ---------------------------------------------------------------------------------


def git_revision() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain")
    return {
        "revision": git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


def machine() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "locust": locust.__version__,
    }


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


class GeneratorMonitor:
    """The generator's own load, so it knows when it is the bottleneck: the CPU of this process
    (as a share of one core, the most one Python process can use) and the event-loop lag (how
    late a 50 ms sleep of the gevent hub wakes up), per window of about a second.

    A window is saturated when the process used at least ``SATURATED_CPU`` of a core, or when
    the median lag was at least ``SATURATED_LAG_MS`` (the loop is busy, or starved of CPU by
    other work: either way iterations start late and latencies include the generator's own
    waiting). A run is not valid when saturated windows cover at least ``INVALID_SHARE`` of
    the schedule and at least 2 s."""

    INTERVAL = 0.05
    SATURATED_CPU = 0.90
    SATURATED_LAG_MS = 50.0
    INVALID_SHARE = 0.20
    LAG_WARNING_MS = 20.0

    def __init__(self, in_schedule: Callable[[], bool]) -> None:
        self.in_schedule = in_schedule
        self.process = psutil.Process()
        self.lag = Trend()  # every sample of the run
        self.window_lag = Trend()
        # (seconds, CPU share, lag p50 ms, lag p99 ms, in the schedule) per window
        self.windows: list[tuple[float, float, float, float, bool]] = []
        self._began = (time.perf_counter(), self._cpu())

    def _cpu(self) -> float:
        t = self.process.cpu_times()
        return float(t.user + t.system)

    @property
    def last(self) -> tuple[float, float, float] | None:
        """(CPU share, lag p50 ms, lag p99 ms) of the last window."""
        return self.windows[-1][1:4] if self.windows else None

    @classmethod
    def saturated(cls, cpu: float, lag_p50: float) -> bool:
        return cpu >= cls.SATURATED_CPU or lag_p50 >= cls.SATURATED_LAG_MS

    def run(self) -> None:
        while True:
            before = time.perf_counter()
            gevent.sleep(self.INTERVAL)
            now = time.perf_counter()
            lag_ms = max((now - before - self.INTERVAL) * 1000, 0.0)
            self.lag.add(lag_ms)
            self.window_lag.add(lag_ms)
            if now - self._began[0] >= 1.0:
                self.close(now)

    def close(self, now: float) -> None:
        cpu = self._cpu()
        wall = now - self._began[0]
        share = (cpu - self._began[1]) / wall if wall > 0 else 0.0
        p = self.window_lag.percentiles((50.0, 99.0))
        self.windows.append((wall, share, p[50.0] or 0.0, p[99.0] or 0.0, self.in_schedule()))
        self.window_lag = Trend()
        self._began = (now, cpu)

    def verdict(self) -> dict[str, Any]:
        windows = [w for w in self.windows if w[4]] or self.windows
        seconds = sum(w[0] for w in windows)
        saturated = sum(w[0] for w in windows if self.saturated(w[1], w[2]))
        valid = not (saturated >= 2.0 and saturated >= self.INVALID_SHARE * seconds)
        cpu = sum(w[0] * w[1] for w in windows) / seconds if seconds else None
        lag = self.lag.percentiles((50.0, 99.0))
        return {
            "valid": valid,
            "cpu_avg": cpu,
            "cpu_max": max((w[1] for w in windows), default=None),
            "saturated_s": round(saturated, 2),
            "seconds": round(seconds, 2),
            "loop_lag_p50_ms": lag[50.0],
            "loop_lag_p99_ms": lag[99.0],
            "loop_lag_max_ms": self.lag.max if self.lag.count else None,
            "rule": f"a second is saturated when the generator used >= {self.SATURATED_CPU:.0%}"
            f" of a core or its event loop lagged >= {self.SATURATED_LAG_MS:.0f} ms (median);"
            f" invalid when saturated seconds are >= {self.INVALID_SHARE:.0%} of the schedule"
            " and >= 2 s",
        }


def combine(verdicts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The workers' generator verdicts as one: valid only if every worker was, the worst
    figure of each."""
    if not verdicts:
        return None

    def worst(key: str) -> float | None:
        values = [v[key] for v in verdicts if v.get(key) is not None]
        return max(values) if values else None

    return {
        "valid": all(v["valid"] for v in verdicts),
        "cpu_avg": worst("cpu_avg"),
        "cpu_max": worst("cpu_max"),
        "saturated_s": worst("saturated_s") or 0.0,
        "seconds": worst("seconds") or 0.0,
        "loop_lag_p50_ms": worst("loop_lag_p50_ms"),
        "loop_lag_p99_ms": worst("loop_lag_p99_ms"),
        "loop_lag_max_ms": worst("loop_lag_max_ms"),
        "rule": verdicts[0]["rule"] + f" (worst of {len(verdicts)} workers)",
    }


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


class RawWriter:
    """Every request as one line, for the user's own analysis (k6's ``--out csv=`` /
    ``--out json=``): time (Unix seconds, when the request was sent), method, name, duration
    in ms, failed (0/1), bytes sent and received, scenario (the workload's name).
    ``.jsonl``/``.json``: JSON lines; else CSV."""

    FIELDS = ("time", "method", "name", "duration_ms", "failed", "sent", "received", "scenario")

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w", newline="")
        self.json = path.suffix in (".jsonl", ".json")
        self.csv = None if self.json else csv.writer(self.file)
        if self.csv is not None:
            self.csv.writerow(self.FIELDS)

    def write(self, row: tuple[Any, ...]) -> None:
        if self.csv is not None:
            self.csv.writerow(row)
        else:
            self.file.write(json.dumps(dict(zip(self.FIELDS, row, strict=True))) + "\n")

    def close(self) -> None:
        self.file.close()


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
        p = _rounded(window.duration.percentiles(PERCENTILES))
        d = _rounded(window.start_delay.percentiles((50.0, 95.0, 100.0)))
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

    def workload_progress(self, wr: WorkloadRun, vus: int) -> str:
        """One workload's part of a progress line (runs with several workloads)."""
        w, t = wr.workload, self.elapsed()
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

    def progress_line(self, snap: dict[str, Any]) -> str:
        w = self.single
        if w is None:
            counts = self.runner.user_classes_count
            load = "  ".join(
                self.workload_progress(wr, counts.get(getattr(wr.user_class, "__name__", ""), 0))
                for wr in self.ctx.workloads.values()
            )
            line = f"[{format_duration(int(snap['elapsed_s'])):>7}] {load}"
        else:
            if w.open_loop and snap["elapsed_s"] > w.duration:
                grace = format_duration(w.graceful_stop)
                load = (
                    f"schedule done, {snap['vus_busy']} iterations in flight (gracefulStop {grace})"
                )
            elif w.open_loop:
                load = (
                    f"target {snap['target']:.1f}/s  achieved {snap['iterations_per_s']:.1f}/s"
                    f"  VUs {snap['vus_busy']}/{snap['vus']} (max {w.max_vus})"
                )
            else:
                load = (
                    f"VUs {snap['vus']}/{round(snap['target'])}"
                    f"  iters {snap['iterations_per_s']:.1f}/s"
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
        if any(wr.workload.open_loop for wr in self.ctx.workloads.values()):
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
            line += (
                f"  generator CPU {cpu:.0%} loop lag p50/p99 {report.ms(lag50)}/{report.ms(lag99)}"
            )
            if GeneratorMonitor.saturated(cpu, lag50):
                line += "  WARNING: generator saturated, latencies include its own waiting"
            elif lag99 >= GeneratorMonitor.LAG_WARNING_MS:
                line += "  warning: generator's event loop lags (CPU shared with other work?)"
        return line

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
            "scenarios": [self.workload_summary(wr, elapsed) for wr in self.ctx.workloads.values()],
            "thresholds": [describe(r) for r in self.threshold_results],
            "breaking_point": self.breaking_point,
            "artifacts": {"dir": str(self.out_dir) if self.writes_results else None},
            "percentile_definition": PERCENTILE_DEFINITION,
        }

    def workload_summary(self, wr: WorkloadRun, elapsed: float) -> dict[str, Any]:
        """One workload's figures; its rates are over its own schedule (from its startTime)."""
        w, state = wr.workload, wr.state
        seconds = min(max(elapsed - w.start_time, 0.0), w.duration)
        iterations = sum(state.iterations.values())
        return {
            "name": w.name,
            "executor": w.executor,
            "start_s": w.start_time,
            "duration_s": w.duration,
            "schedule_s": round(seconds, 3),
            "unit": w.unit,
            "target_peak": w.schedule.peak,
            "journeys": w.journeys,
            "iterations": iterations,
            "iterations_per_s": iterations / seconds if seconds > 0 else 0.0,
            "dropped_iterations": state.dropped,
            "interrupted_iterations": state.interrupted,
            "vus_max_used": state.vus_max_used,
            "max_vus": w.max_vus or None,
            "iteration_duration": trend_figures(
                state.merged_iteration_duration() if state.iteration_duration else None
            ),
            "iteration_start_delay": trend_figures(
                state.start_delay if state.start_delay.count else None
            ),
            **endpoint_rows(state, seconds),
            "checks": check_rows(state),
        }

    def write_artifacts(self, summary: dict[str, Any]) -> None:
        out = self.out_dir
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        (out / "history.json").write_text(json.dumps(self.history, indent=1) + "\n")
        if self.history:
            with (out / "history.csv").open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(self.history[0]))
                writer.writeheader()
                writer.writerows(self.history)
        try:
            (out / "report.html").write_text(get_html_report(self.env, show_download_link=False))
        except (
            Exception
        ) as exc:  # the report is a convenience; the run's verdict must not depend on it
            log.warning("HTML report not written: %s", exc)


def run(scenario: Scenario, options: Options) -> int:
    check_reachable(options.target)
    return Controller(new_context(scenario, new_run_id()), options).run()
