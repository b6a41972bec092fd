from typing import Any

import pytest

from loadtests.metrics import RunState, Trend
from loadtests.report import render


def test_trend_figures_follow_the_one_percentile_definition() -> None:
    trend = Trend()
    for ms in range(1, 101):
        trend.add(float(ms))
    assert (trend.count, trend.min, trend.max, trend.avg) == (100, 1, 100, 50.5)
    # rank round(p/100 x 100): the 50th, 95th, 99th and 100th sample, to 3 significant digits
    assert [trend.percentile(p) for p in (50, 95, 99, 100)] == pytest.approx(
        [50, 95, 99, 100], rel=5e-4
    )
    assert Trend().percentile(95) == 0


def test_p95_of_20_samples_is_the_19th_not_the_maximum() -> None:
    trend = Trend()
    for ms in [*range(1, 20), 5000]:
        trend.add(float(ms))
    assert trend.percentile(95) == pytest.approx(19, rel=5e-4)
    assert trend.percentile(100) == 5000


def test_percentiles_keep_three_significant_digits_from_microseconds_to_a_minute() -> None:
    for ms in (0.25, 3.7, 296.0, 304.0, 1149.0, 59_000.0):
        trend = Trend()
        trend.add(ms)
        trend.add(ms * 1000)  # a larger sample, so the percentile is not clamped to the max
        assert trend.percentile(50) == pytest.approx(ms, rel=5e-4)
    trend = Trend()
    for ms in (10.0, 90_000.0, 95_000.0):  # beyond 60 s a sample counts as 60 s; max stays exact
        trend.add(ms)
    assert (trend.percentile(50), trend.max) == (pytest.approx(60_000, rel=5e-4), 95_000)


def test_trends_merge_and_survive_export() -> None:
    a, b = Trend(), Trend()
    for ms in range(1, 51):
        a.add(float(ms))
    for ms in range(51, 101):
        b.add(float(ms))
    a.merge(Trend.from_export(b.export()))
    assert (a.count, a.min, a.max, a.avg) == (100, 1, 100, 50.5)
    assert a.percentile(95) == pytest.approx(95, rel=5e-4)


def test_prometheus_buckets_are_cumulative_and_in_seconds() -> None:
    trend = Trend()
    for ms in (5, 5, 50, 700, 20000):
        trend.add(float(ms))
    cumulative, total, total_sum = trend.buckets([0.01, 0.1, 1.0])
    assert cumulative == [2, 3, 4]
    assert total == 5
    assert total_sum == pytest.approx(0.01 + 0.05 + 0.7 + 20)


def test_run_state_keeps_requests_per_endpoint_and_per_second() -> None:
    state = RunState(started=0.0)
    state.request("GET", "/a", 10.0, False, sent=100, received=300)
    state.request("GET", "/a", 30.0, True, sent=100, received=50)
    state.request("POST", "/b", 20.0, False)
    assert (state.requests, state.failures, state.data_sent, state.data_received) == (
        3,
        1,
        200,
        350,
    )
    both = state.http_duration()
    assert both is not None and (both.count, both.max) == (3, 30.0)
    only_a = state.http_duration("GET /a")
    assert only_a is not None and only_a.count == 2
    assert state.http_duration("/missing") is None
    second = state.next_second()
    assert (second.requests, second.failures, second.duration.count) == (3, 1, 3)
    assert state.second.requests == 0


def test_run_state_counts_checks_and_the_achieved_rate() -> None:
    state = RunState(started=0.0)
    for t in range(10):
        state.iteration_started("browse", now=t * 0.5)
    state.check("order accepted", True)
    state.check("order accepted", False)
    assert state.checks == {"order accepted": [1, 1]}
    assert state.recent_start_rate(window=2.0, now=5.0) == pytest.approx(4 / 2.0)


def summary(**overrides: Any) -> dict[str, Any]:
    row = {
        "name": "/api/products/{id}",
        "method": "GET",
        "requests": 120,
        "failures": 0,
        "failure_rate": 0.0,
        "rate": 12.0,
        "avg": 20.0,
        "p50": 15.0,
        "p90": 40.0,
        "p95": 55.0,
        "p99": 120.0,
        "max": 1500.0,
    }
    base = {
        "scenario": {
            "name": "load",
            "variant": "ci",
            "executor": "ramping-arrival-rate",
            "source": "load.yaml",
        },
        "target": "http://127.0.0.1:18080",
        "run": {"duration_s": 10.0, "aborted": False, "abort_reason": None},
        "load": {
            "iterations": 50,
            "iterations_per_s": 5.0,
            "dropped_iterations": 0,
            "interrupted_iterations": 0,
            "vus_max_used": 7,
            "target_peak": 5.0,
            "unit": "iters/s",
        },
        "endpoints": [row],
        "total": {**row, "name": "Aggregated", "method": ""},
        "checks": [{"name": "product found", "passes": 9, "fails": 1}],
        "thresholds": [
            {
                "metric": "http_req_duration",
                "condition": "p(95)<300",
                "ok": True,
                "observed": "55.0ms",
                "abort_on_fail": False,
            },
            {
                "metric": "checks",
                "condition": "rate>0.99",
                "ok": False,
                "observed": "90.00%",
                "abort_on_fail": True,
            },
        ],
        "breaking_point": None,
        "artifacts": {"dir": "loadtests/results/x"},
    }
    return {**base, **overrides}


def test_summary_table_shows_endpoints_checks_and_each_threshold() -> None:
    text = render(summary())
    lines = text.splitlines()
    assert any(line.split()[:3] == ["GET", "/api/products/{id}", "120"] for line in lines)
    assert any(line.split()[:2] == ["TOTAL", "120"] for line in lines)
    assert "1.50s" in text  # max, in seconds above one second
    assert "PASS  http_req_duration  p(95)<300  observed 55.0ms" in text
    assert "FAIL  checks  rate>0.99  observed 90.00% (abortOnFail)" in text
    assert "check FAIL product found: 9/10 passed" in text
    assert "result     FAILED: 1 threshold(s) crossed" in text


def test_summary_reports_an_abort_and_the_breaking_point() -> None:
    bp = {
        "elapsed_s": 42.0,
        "stage": 3,
        "target": 80.0,
        "unit": "VUs",
        "achieved_iterations_per_s": 31.5,
        "requests_per_s": 95.0,
        "threshold": "http_req_duration: p(95)<800",
        "observed": "910.0ms",
    }
    text = render(
        summary(
            run={"duration_s": 42.0, "aborted": True, "abort_reason": "threshold crossed"},
            breaking_point=bp,
            thresholds=[],
        )
    )
    assert "ABORTED: threshold crossed" in text
    assert "breaking point at 42s, stage 3: target 80.0 VUs, achieved 31.5 iters/s" in text
    assert "result     ABORTED" in text


def test_a_master_gets_the_workers_figures_and_their_latencies_per_report() -> None:
    worker, master = RunState(started=0.0), RunState(started=0.0)
    for ms in (10.0, 20.0, 30.0):
        worker.request("GET", "/a", ms, False, sent=100, received=200)
    worker.iteration_started("product", delay_ms=2.0)
    first = worker.export()
    master.absorb([first])
    master.absorb_window(first)
    assert (master.requests, master.data_sent, sum(master.iterations.values())) == (3, 300, 1)
    assert master.second.duration.count == 3 and master.second.start_delay.count == 1
    assert master.second.duration.percentile(50) == pytest.approx(20, rel=5e-4)
    worker.request("GET", "/a", 40.0, True)
    second = worker.export()  # cumulative figures, latencies since the first export only
    master.absorb([second])
    master.absorb_window(second)
    assert (master.requests, master.failures) == (4, 1)
    assert master.progress.duration.count == 4
    assert Trend.from_export(second["window"][0]).count == 1
