"""Prometheus metrics of the load generator, so Grafana can show the load beside the services.

Served at http://<addr>/metrics (default 127.0.0.1:19105, scraped as job ``loadgen``). Values are
read from Locust's statistics and the run state at scrape time; nothing is copied on the hot path.

    locust_test_running{scenario}                      1 while a run is under way, 0 before/after
    locust_stage{scenario}                             current stage (1-based), 0 when not running
    locust_scenario_info{scenario,variant,executor,target,run_id}   1
    locust_users                                       running virtual users
    locust_users_busy                                  virtual users inside an iteration
    locust_users_target                                target VUs (ramping-vus / constant-vus)
    locust_arrival_rate_target                         target iterations/s (arrival-rate executors)
    locust_iterations_total{journey}                   iterations started
    locust_iterations_dropped_total                    iterations dropped because maxVUs were busy
    locust_requests_total{name,method}                 requests sent
    locust_request_failures_total{name,method}         failed requests
    locust_request_duration_seconds{name,method}       histogram, from the runner's HDR histograms
    locust_iteration_start_delay_seconds               histogram: open-loop schedule lag
    locust_data_sent_bytes, locust_data_received_bytes HTTP bytes (request/response as on the wire)
    locust_generator_cpu_ratio                         the generator's CPU, share of one core
    locust_generator_loop_lag_seconds                  p99 lag of its event loop, last second
    locust_checks_total{check,result}                  checks passed / failed
    locust_threshold_ok{threshold}                     1 while a threshold holds, 0 once crossed
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

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
        """``run``: the run's Controller (duck-typed: scenario, target, env, state, ...)."""
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

        runner = run.env.runner
        yield GaugeMetricFamily(
            "locust_users", "Running virtual users", value=runner.user_count if runner else 0
        )
        yield GaugeMetricFamily(
            "locust_users_busy", "Virtual users inside an iteration", value=run.state.vus_busy
        )
        target = run.target_now if run.running else 0.0
        if run.scenario.open_loop:
            yield GaugeMetricFamily(
                "locust_arrival_rate_target", "Target iterations per second", value=target
            )
        else:
            yield GaugeMetricFamily("locust_users_target", "Target virtual users", value=target)

        iterations = CounterMetricFamily(
            "locust_iterations", "Iterations started", labels=["journey"]
        )
        for journey, count in sorted(run.state.iterations.items()):
            iterations.add_metric([journey], count)
        yield iterations
        yield CounterMetricFamily(
            "locust_iterations_dropped",
            "Iterations dropped because every VU up to maxVUs was busy",
            value=run.state.dropped,
        )

        requests = CounterMetricFamily(
            "locust_requests", "Requests sent", labels=["name", "method"]
        )
        failures = CounterMetricFamily(
            "locust_request_failures", "Requests that failed", labels=["name", "method"]
        )
        duration = HistogramMetricFamily(
            "locust_request_duration_seconds", "Request latency", labels=["name", "method"], unit=""
        )
        for (method, name), entry in sorted(
            run.state.endpoints.items(), key=lambda kv: kv[0][::-1]
        ):
            labels = [name, method]
            requests.add_metric(labels, entry.requests)
            failures.add_metric(labels, entry.failures)
            cumulative, total, total_sum = entry.duration.buckets(BUCKETS)
            buckets = [
                (repr(bound), float(n)) for bound, n in zip(BUCKETS, cumulative, strict=True)
            ]
            duration.add_metric(labels, [*buckets, ("+Inf", float(total))], total_sum)
        yield requests
        yield failures
        yield duration
        delay = HistogramMetricFamily(
            "locust_iteration_start_delay_seconds",
            "How late open-loop iterations started against their schedule",
            unit="",
        )
        cumulative, total, total_sum = run.state.start_delay.buckets(BUCKETS)
        buckets = [(repr(bound), float(n)) for bound, n in zip(BUCKETS, cumulative, strict=True)]
        delay.add_metric([], [*buckets, ("+Inf", float(total))], total_sum)
        yield delay
        yield CounterMetricFamily(
            "locust_data_sent_bytes", "HTTP bytes sent", value=run.state.data_sent
        )
        yield CounterMetricFamily(
            "locust_data_received_bytes", "HTTP bytes received", value=run.state.data_received
        )
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

        checks = CounterMetricFamily(
            "locust_checks", "Checks made by the journeys", labels=["check", "result"]
        )
        for name, (passes, fails) in sorted(run.state.checks.items()):
            checks.add_metric([name, "pass"], passes)
            checks.add_metric([name, "fail"], fails)
        yield checks

        thresholds = GaugeMetricFamily(
            "locust_threshold_ok",
            "1 while the threshold holds, 0 once crossed",
            labels=["threshold"],
        )
        for result in run.threshold_results:
            thresholds.add_metric([str(result.threshold)], 1.0 if result.ok else 0.0)
        yield thresholds


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
