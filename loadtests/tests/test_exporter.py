"""The Prometheus export of the load generator (exporter.py): every series that belongs to one
scenario of the file carries it as its ``scenario`` label (k6's ``scenario`` tag), so Grafana
can show each scenario apart and ``sum(...)`` still gives the run.

Most tests scrape a stand-in for the Controller (the collector reads it duck-typed): the real
one needs Locust, whose gevent monkey-patching the test process must not get (see
helpers.py); the last one scrapes a real two-scenario run."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loadtests.exporter import LoadgenCollector
from loadtests.metrics import RunState
from loadtests.scenario import Scenario, Workload, loads
from loadtests.tests.helpers import REPO, Run, free_port

TWO_SCENARIOS = """
name: two
thinkTime: 0s
scenarios:
  browse:
    executor: constant-arrival-rate
    rate: 10
    duration: 4s
    preAllocatedVUs: 2
    maxVUs: 3
    journeys: {product: 1}
  checkout:
    executor: ramping-vus
    startTime: 2s
    stages: [{duration: 2s, target: 4}]
    journeys: {buy: 1}
"""


@dataclass
class WorkloadRun:
    """users.WorkloadRun's fields the collector reads."""

    workload: Workload
    state: RunState
    states: tuple[RunState, ...]


@dataclass
class FakeRun:
    """The Controller's side the collector reads, ``elapsed`` seconds into the run."""

    scenario: Scenario
    elapsed_s: float
    vus: dict[str, int]
    state: RunState = field(default_factory=RunState)
    running: bool = True
    target: str = "http://sut:8080"
    run_id: str = "r1"
    stage_number: int = 0
    target_now: float = 0.0
    threshold_results: list[Any] = field(default_factory=list)
    monitor: None = None

    def __post_init__(self) -> None:
        single = len(self.scenario.workloads) == 1
        workloads = {}
        for w in self.scenario.workloads:  # as users.new_context makes them
            own = self.state if single else RunState()
            workloads[w.name] = WorkloadRun(w, own, (self.state,) if single else (self.state, own))
        self.ctx = SimpleNamespace(workloads=workloads)
        self.env = SimpleNamespace(runner=SimpleNamespace(user_count=sum(self.vus.values())))

    def elapsed(self) -> float:
        return self.elapsed_s

    def workload_vus(self) -> dict[str, int]:
        return self.vus

    def states(self, scenario: str) -> tuple[RunState, ...]:
        return tuple(self.ctx.workloads[scenario].states)


def record(
    states: Iterable[RunState],
    journey: str,
    requests: list[tuple[str, str, float, bool]],
    delay_ms: float | None = None,
    checks: dict[str, bool] | None = None,
) -> None:
    """One iteration as a VU records it: into the run's state and its scenario's."""
    for state in states:
        state.iteration_started(journey, delay_ms=delay_ms)
        for method, name, ms, failed in requests:
            state.request(method, name, ms, failed, sent=100, received=1000)
        for check, ok in (checks or {}).items():
            state.check(check, ok)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(run: FakeRun) -> Samples:
    """Every sample of a scrape: (sample name, labels) -> value."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LoadgenCollector(run))
    return parse(generate_latest(registry).decode())


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_scenario(samples: Samples, metric: str, /, **labels: str) -> dict[str, float]:
    """The samples of ``metric`` whose labels include ``labels``, summed per scenario label."""
    out: dict[str, float] = {}
    for (sample, sample_labels), value in samples.items():
        tags = dict(sample_labels)
        if sample == metric and labels.items() <= tags.items():
            out[tags.get("scenario", "")] = out.get(tags.get("scenario", ""), 0.0) + value
    return out


def two_scenario_run() -> FakeRun:
    """3 s into the run: browse started 3 iterations (one late by 40 ms, one failed request)
    and dropped 2, checkout (from 2 s) started 2 and has 1 VU busy."""
    run = FakeRun(loads(TWO_SCENARIOS), elapsed_s=3.0, vus={"browse": 3, "checkout": 2})
    browse, checkout = run.states("browse"), run.states("checkout")
    product = [("GET", "/api/products/{id}", 20.0, False)]
    record(browse, "product", product, delay_ms=1.0, checks={"product found": True})
    record(browse, "product", product, delay_ms=40.0, checks={"product found": True})
    record(browse, "product", [("GET", "/api/products/{id}", 600.0, True)], delay_ms=2.0)
    buy = [("POST", "/api/orders", 200.0, False), ("GET", "/api/orders/{id}", 70.0, False)]
    for _ in range(2):
        record(checkout, "buy", buy, checks={"order paid": True, "product found": False})
    for state in browse:
        state.dropped += 2
    for state in checkout:
        state.vus_busy += 1
    return run


def test_each_scenario_of_a_file_has_its_own_series() -> None:
    samples = scrape(two_scenario_run())

    assert by_scenario(samples, "locust_iterations_total") == {"browse": 3, "checkout": 2}
    assert by_scenario(samples, "locust_iterations_total", journey="buy") == {"checkout": 2}
    assert by_scenario(samples, "locust_iterations_dropped_total") == {"browse": 2, "checkout": 0}
    assert by_scenario(samples, "locust_requests_total") == {"browse": 3, "checkout": 4}
    assert by_scenario(samples, "locust_requests_total", name="/api/orders") == {"checkout": 2}
    assert by_scenario(samples, "locust_request_failures_total") == {"browse": 1, "checkout": 0}
    assert by_scenario(samples, "locust_request_duration_seconds_count", method="POST") == {
        "checkout": 2
    }
    # browse's 20 ms requests are under 25 ms, its failed one is not; checkout's are all above
    assert by_scenario(samples, "locust_request_duration_seconds_bucket", le="0.025") == {
        "browse": 2,
        "checkout": 0,
    }
    assert by_scenario(samples, "locust_iteration_start_delay_seconds_count") == {
        "browse": 3,
        "checkout": 0,
    }
    assert by_scenario(samples, "locust_iteration_start_delay_seconds_bucket", le="0.025") == {
        "browse": 2,
        "checkout": 0,
    }
    assert by_scenario(samples, "locust_users") == {"browse": 3, "checkout": 2}
    assert by_scenario(samples, "locust_users_busy") == {"browse": 0, "checkout": 1}
    # each target by its own executor: browse's rate, checkout's VUs 1 s into its 0 -> 4 ramp
    assert by_scenario(samples, "locust_arrival_rate_target") == {"browse": 10}
    assert by_scenario(samples, "locust_users_target") == {"checkout": 2}
    assert by_scenario(samples, "locust_checks_total", check="product found", result="fail") == {
        "browse": 0,
        "checkout": 2,
    }
    assert by_scenario(samples, "locust_data_sent_bytes_total") == {"browse": 300, "checkout": 400}


def test_summed_over_scenarios_the_series_are_the_run() -> None:
    """What the dashboards query (sum, sum by (le)) is the whole run's figure, counted once."""
    run = two_scenario_run()
    samples = scrape(run)

    def total(metric: str, /, **labels: str) -> float:
        return sum(by_scenario(samples, metric, **labels).values())

    state = run.state
    assert total("locust_iterations_total") == sum(state.iterations.values()) == 5
    assert total("locust_requests_total") == state.requests == 7
    assert total("locust_request_failures_total") == state.failures == 1
    assert total("locust_request_duration_seconds_bucket", le="+Inf") == 7
    assert total("locust_iterations_dropped_total") == state.dropped == 2
    assert total("locust_users_busy") == state.vus_busy == 1
    assert total("locust_data_received_bytes_total") == state.data_received == 7000


def test_a_scenario_that_has_not_started_has_no_target_yet() -> None:
    run = two_scenario_run()
    run.elapsed_s = 1.0
    samples = scrape(run)
    assert by_scenario(samples, "locust_users_target") == {"checkout": 0}
    assert by_scenario(samples, "locust_arrival_rate_target") == {"browse": 10}
    run.running = False
    assert by_scenario(scrape(run), "locust_arrival_rate_target") == {"browse": 0}


def test_a_file_without_scenarios_labels_its_series_default() -> None:
    scenario = loads(
        "executor: constant-vus\nvus: 2\nduration: 10s\njourneys: {browse: 1}\n", source="one"
    )
    run = FakeRun(scenario, elapsed_s=5.0, vus={"default": 2}, target_now=2.0, stage_number=1)
    record(run.states("default"), "browse", [("GET", "/api/products", 12.0, False)])
    samples = scrape(run)

    assert by_scenario(samples, "locust_requests_total") == {"default": 1}
    assert by_scenario(samples, "locust_iterations_total") == {"default": 1}
    assert by_scenario(samples, "locust_users") == {"default": 2}
    assert by_scenario(samples, "locust_users_target") == {"default": 2}
    # the run's own series keep the file's name
    assert by_scenario(samples, "locust_test_running") == {"one": 1}
    assert by_scenario(samples, "locust_stage") == {"one": 1}


def test_a_real_run_exports_each_scenario_as_its_summary_reports_it(
    fake_gateway: str, tmp_path: Path
) -> None:
    """``python -m loadtests run`` with two scenarios: while both run, each has its own VUs
    (its user class's) and target; after the run (``--linger``), each scenario's counters are
    the figures the summary gives that scenario."""
    path = tmp_path / "two.yaml"
    path.write_text(
        "thinkTime: 0s\nscenarios:\n"
        "  browse: {executor: constant-arrival-rate, rate: 10, duration: 4s,"
        " preAllocatedVUs: 5, journeys: {product: 1}}\n"
        "  checkout: {executor: constant-vus, startTime: 2s, vus: 1, duration: 2s,"
        " journeys: {buy: 1}, gracefulStop: 3s}\n"
    )
    port, out = free_port(), tmp_path / "out"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "loadtests", "run", str(path), "--target", fake_gateway),
            *("--out", str(out), "--metrics", f"127.0.0.1:{port}", "--linger", "3"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    during: Samples = {}
    after: Samples = {}
    deadline = time.monotonic() + 40
    while proc.poll() is None and time.monotonic() < deadline and not after:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                samples = parse(r.read().decode())
        except OSError:
            samples = {}
        running = sum(by_scenario(samples, "locust_test_running").values())
        if running and by_scenario(samples, "locust_users").get("checkout"):
            during = during or samples  # the first scrape with both scenarios under way
        elif during and not running:
            after = samples
        time.sleep(0.2)
    try:
        output, _ = proc.communicate(timeout=30)  # the summary is written before the linger
    finally:
        proc.kill()

    assert proc.returncode == 0, output
    assert during and after, output
    assert by_scenario(during, "locust_users") == {"browse": 5, "checkout": 1}
    assert by_scenario(during, "locust_arrival_rate_target") == {"browse": 10}
    assert by_scenario(during, "locust_users_target") == {"checkout": 1}
    summary = {s["name"]: s for s in Run(0, output, out).summary["scenarios"]}
    for metric, figure in (
        ("locust_iterations_total", "iterations"),
        ("locust_iterations_dropped_total", "dropped_iterations"),
    ):
        assert by_scenario(after, metric) == {n: s[figure] for n, s in summary.items()}, metric
    for metric, figure in (
        ("locust_requests_total", "requests"),
        ("locust_request_failures_total", "failures"),
        ("locust_request_duration_seconds_count", "requests"),
    ):
        assert by_scenario(after, metric) == {n: s["total"][figure] for n, s in summary.items()}
    assert by_scenario(after, "locust_iteration_start_delay_seconds_count") == {
        "browse": summary["browse"]["iterations"],  # every open-loop iteration has its delay
        "checkout": 0,
    }
