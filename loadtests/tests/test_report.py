from typing import Any

import pytest

from loadtests.metrics import Histogram, RunState, bucket_counts, round_ms
from loadtests.report import render


def test_durations_are_rounded_like_locust() -> None:
    assert [round_ms(x) for x in (4.4, 99.6, 147, 1234, 12345)] == [4, 100, 150, 1200, 12000]


def test_histogram_figures() -> None:
    hist = Histogram()
    for ms in range(1, 101):
        hist.add(float(ms))
    assert (hist.count, hist.min, hist.max, hist.avg) == (100, 1, 100, 50.5)
    assert [hist.percentile(p) for p in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert Histogram().percentile(95) == 0


def test_bucket_counts_are_cumulative_and_in_seconds() -> None:
    cumulative, total, total_sum = bucket_counts({5: 2, 50: 1, 700: 1, 20000: 1}, [0.01, 0.1, 1.0])
    assert cumulative == [2, 3, 4]
    assert total == 5
    assert total_sum == pytest.approx(0.01 + 0.05 + 0.7 + 20)


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
