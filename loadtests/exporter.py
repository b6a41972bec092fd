"""Prometheus metrics of the load generator, so Grafana can show the load beside the services.

Served at http://<addr>/metrics (default 127.0.0.1:19105, scraped as job ``loadgen``). Values are
read from Locust's statistics and the run state at scrape time; nothing is copied on the hot path.

The run's own series are labelled with the file's name (``scenario="load"``); the series of
the load itself with the scenario of the file they belong to (``scenario="browse"``, k6's
``scenario`` tag; ``default`` in a file without ``scenarios:``), read from that scenario's own
figures (on a Locust master, the sum of what the workers reported for it). There is one series
per scenario and none for the whole run beside them, so ``sum(...)`` over them is the run.

    locust_test_running{scenario}                      1 while a run is under way, 0 before/after
    locust_stage{scenario}                             current stage (1-based), 0 when not running
    locust_scenario_info{scenario,variant,executor,target,run_id}   1
    locust_generator_cpu_ratio                         the generator's CPU, share of one core
    locust_generator_loop_lag_seconds                  p99 lag of its event loop, last second
    locust_threshold_ok{threshold}                     1 while a threshold holds, 0 once crossed

  per scenario of the file:
    locust_users{scenario}                             running virtual users
    locust_users_busy{scenario}                        virtual users inside an iteration
    locust_users_target{scenario}                      target VUs (ramping-vus / constant-vus)
    locust_arrival_rate_target{scenario}               target iterations/s (arrival-rate executors)
    locust_iterations_total{journey,scenario}          iterations started
    locust_iterations_dropped_total{scenario}          iterations dropped because maxVUs were busy
    locust_requests_total{name,method,scenario}        requests sent
    locust_request_failures_total{name,method,scenario}    failed requests
    locust_request_duration_seconds{name,method,scenario}  histogram, from the HDR histograms
    locust_iteration_start_delay_seconds{scenario}     histogram: open-loop schedule lag
    locust_data_sent_bytes{scenario}                   HTTP bytes sent (requests as on the wire)
    locust_data_received_bytes{scenario}               HTTP bytes received (responses likewise)
    locust_checks_total{check,result,scenario}         checks passed / failed

A scenario's target is 0 before its startTime and while no run is under way; each scenario has
the target of its executor (a file may have both kinds).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from loadtests.metrics import Trend

log = logging.getLogger(__name__)

BUCKETS = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.8,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
]


class LoadgenCollector(Collector):
    def __init__(self, run: Any) -> None:
        """``run``: the run's Controller (duck-typed: scenario, ctx, running, elapsed(),
        workload_vus(), ...)."""
        self.run = run

    def collect(self) -> Iterator[Any]:
        run = self.run
        scenario = run.scenario.name
        running = GaugeMetricFamily(
            "locust_test_running", "1 while a load test runs, else 0", labels=["scenario"]
        )
        running.add_metric([scenario], 1.0 if run.running else 0.0)
        yield running
        stage = GaugeMetricFamily(
            "locust_stage",
            "Current stage of the scenario (1-based), 0 when not running",
            labels=["scenario"],
        )
        stage.add_metric([scenario], float(run.stage_number if run.running else 0))
        yield stage
        info = GaugeMetricFamily(
            "locust_scenario_info",
            "The scenario being run",
            labels=["scenario", "variant", "executor", "target", "run_id"],
        )
        info.add_metric(
            [scenario, run.scenario.variant or "", run.scenario.executor, run.target, run.run_id],
            1.0,
        )
        yield info

        yield from scenario_series(run)
        monitor = getattr(run, "monitor", None)
        if monitor is not None and monitor.last is not None:
            cpu, _, lag = monitor.last
            yield GaugeMetricFamily(
                "locust_generator_cpu_ratio",
                "CPU of the generator process in the last second, share of one core",
                value=cpu,
            )
            yield GaugeMetricFamily(
                "locust_generator_loop_lag_seconds",
                "p99 lag of the generator's event loop in the last second",
                value=lag / 1000,
            )

        thresholds = GaugeMetricFamily(
            "locust_threshold_ok",
            "1 while the threshold holds, 0 once crossed",
            labels=["threshold"],
        )
        for result in run.threshold_results:
            thresholds.add_metric([str(result.threshold)], 1.0 if result.ok else 0.0)
        yield thresholds


def scenario_series(run: Any) -> Iterator[Any]:
    """The series of each scenario of the file (k6's ``scenario`` tag), read from its own
    figures: one series per scenario, never one for the whole run beside them, so a ``sum``
    over the scenarios is the run counted once."""
    elapsed = run.elapsed()
    vus = run.workload_vus()
    users = GaugeMetricFamily("locust_users", "Running virtual users", labels=["scenario"])
    busy = GaugeMetricFamily(
        "locust_users_busy", "Virtual users inside an iteration", labels=["scenario"]
    )
    users_target = GaugeMetricFamily(
        "locust_users_target", "Target virtual users", labels=["scenario"]
    )
    rate_target = GaugeMetricFamily(
        "locust_arrival_rate_target", "Target iterations per second", labels=["scenario"]
    )
    iterations = CounterMetricFamily(
        "locust_iterations", "Iterations started", labels=["journey", "scenario"]
    )
    dropped = CounterMetricFamily(
        "locust_iterations_dropped",
        "Iterations dropped because every VU up to maxVUs was busy",
        labels=["scenario"],
    )
    requests = CounterMetricFamily(
        "locust_requests", "Requests sent", labels=["name", "method", "scenario"]
    )
    failures = CounterMetricFamily(
        "locust_request_failures", "Requests that failed", labels=["name", "method", "scenario"]
    )
    duration = HistogramMetricFamily(
        "locust_request_duration_seconds",
        "Request latency",
        labels=["name", "method", "scenario"],
        unit="",
    )
    delay = HistogramMetricFamily(
        "locust_iteration_start_delay_seconds",
        "How late open-loop iterations started against their schedule",
        labels=["scenario"],
        unit="",
    )
    sent = CounterMetricFamily("locust_data_sent_bytes", "HTTP bytes sent", labels=["scenario"])
    received = CounterMetricFamily(
        "locust_data_received_bytes", "HTTP bytes received", labels=["scenario"]
    )
    checks = CounterMetricFamily(
        "locust_checks", "Checks made by the journeys", labels=["check", "result", "scenario"]
    )
    for wr in run.ctx.workloads.values():
        w, state = wr.workload, wr.state
        name = w.name
        users.add_metric([name], vus.get(name, 0))
        busy.add_metric([name], state.vus_busy)
        target = w.target_at(elapsed) if run.running else 0.0
        (rate_target if w.open_loop else users_target).add_metric([name], target)
        for journey, count in sorted(state.iterations.items()):
            iterations.add_metric([journey, name], count)
        dropped.add_metric([name], state.dropped)
        for (method, route), entry in sorted(state.endpoints.items(), key=lambda kv: kv[0][::-1]):
            labels = [route, method, name]
            requests.add_metric(labels, entry.requests)
            failures.add_metric(labels, entry.failures)
            duration.add_metric(labels, *histogram(entry.duration))
        delay.add_metric([name], *histogram(state.start_delay))
        sent.add_metric([name], state.data_sent)
        received.add_metric([name], state.data_received)
        for check, (passes, fails) in sorted(state.checks.items()):
            checks.add_metric([check, "pass", name], passes)
            checks.add_metric([check, "fail", name], fails)
    yield users
    yield busy
    # the target of each scenario's executor: VUs (closed loop) or iterations/s (open loop)
    yield from (family for family in (users_target, rate_target) if family.samples)
    yield from (iterations, dropped, requests, failures, duration, delay, sent, received, checks)


def histogram(trend: Trend) -> tuple[list[tuple[str, float]], float]:
    """A trend as Prometheus buckets (cumulative, in seconds, +Inf last) and their sum."""
    cumulative, total, total_sum = trend.buckets(BUCKETS)
    buckets = [(repr(bound), float(n)) for bound, n in zip(BUCKETS, cumulative, strict=True)]
    return [*buckets, ("+Inf", float(total))], total_sum


def serve(run: Any, address: str) -> Any | None:
    """Start a gevent WSGI server for /metrics; returns it, or None when the port is taken."""
    from gevent.pywsgi import WSGIServer

    host, _, port = address.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LoadgenCollector(run))
    app = make_wsgi_app(registry)
    server = WSGIServer((host or "127.0.0.1", int(port)), app, log=None, error_log=None)
    try:
        server.start()
    except OSError as exc:
        log.warning("metrics endpoint %s not started: %s", address, exc)
        return None
    return server
