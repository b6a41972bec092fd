"""Whole runs of the scenario runner (``python -m loadtests run``) against the in-memory fake
gateway: a shipped scenario passes and leaves its results, thresholds decide the exit code, and
the Prometheus endpoint shows the run while it is under way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from loadtests.tests.helpers import REPO, Run, free_port, run_loadtest

ROUTES = {
    "GET /api/products",
    "GET /api/products/{id}",
    "POST /api/orders",
    "GET /api/orders/{id}",
    "GET /api/customers/{id}/orders",
}


def scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


def test_smoke_passes_leaves_its_results_and_exports_metrics(
    fake_gateway: str, tmp_path: Path
) -> None:
    out = tmp_path / "smoke"
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadtests",
            "run",
            "smoke",
            "--variant",
            "ci",
            "--target",
            fake_gateway,
            "--out",
            str(out),
            "--metrics",
            f"127.0.0.1:{port}",
            "--progress-every",
            "2",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    metrics = ""
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        metrics = scrape(f"http://127.0.0.1:{port}/metrics") or metrics
        if 'name="/api/products/{id}"' in metrics:
            break
        time.sleep(0.5)
    output, _ = proc.communicate(timeout=60)

    assert proc.returncode == 0, output
    assert 'locust_test_running{scenario="smoke"} 1.0' in metrics
    assert 'locust_stage{scenario="smoke"} 1.0' in metrics
    # the one scenario of a file without scenarios: is "default"; 2 VUs, the 2nd may be starting
    assert re.search(r'^locust_users\{scenario="default"\} [12]\.0$', metrics, re.MULTILINE)
    route = 'method="GET",name="/api/products/{id}",scenario="default"'
    assert f"locust_requests_total{{{route}}}" in metrics
    assert f'locust_request_duration_seconds_bucket{{le="0.3",{route}}}' in metrics

    assert "locust_data_received_bytes_total" in metrics
    assert "locust_iteration_start_delay_seconds_count" in metrics

    assert "stage 1/1" in output  # live progress
    assert "generator CPU" in output
    assert "result     PASSED" in output
    for name in (
        "summary.json",
        "report.html",
        "history.json",
        "history.csv",
        "locust_stats_history.csv",
    ):
        assert (out / name).stat().st_size > 0, name

    summary = Run(0, "", out).summary
    assert (summary["scenario"]["name"], summary["scenario"]["variant"]) == ("smoke", "ci")
    assert summary["target"] == fake_gateway
    assert {"revision", "dirty"} <= set(summary["git"])
    assert summary["machine"]["cpus"] and summary["machine"]["locust"]
    routes = {f"{e['method']} {e['name']}" for e in summary["endpoints"]}
    assert routes <= ROUTES and len(routes) >= 3  # journeys are picked at random: most, not all
    assert all(t["ok"] for t in summary["thresholds"]) and len(summary["thresholds"]) == 4
    assert summary["checks"] and all(c["fails"] == 0 for c in summary["checks"])
    assert summary["run"]["exit_code"] == 0


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_an_impossible_threshold_fails_the_run(fake_gateway: str, tmp_path: Path) -> None:
    scenario = write(
        tmp_path,
        """
executor: constant-arrival-rate
rate: 5
duration: 3s
preAllocatedVUs: 2
maxVUs: 20
thinkTime: 0s
journeys: {product: 1}
thresholds:
  http_req_duration: ["p(95)<0.001"]
  http_req_failed: ["rate<0.01"]
""",
    )
    run = run_loadtest(scenario, fake_gateway, tmp_path / "out")
    assert run.returncode == 99, run.output
    assert "FAIL  http_req_duration  p(95)<0.001" in run.output
    assert "PASS  http_req_failed  rate<0.01" in run.output
    summary = run.summary
    assert [t["ok"] for t in summary["thresholds"]] == [False, True]
    assert not summary["run"]["aborted"]
    assert summary["load"]["iterations"] == 15  # ran to the end: 5/s for 3 s


def test_abort_on_fail_stops_the_run_and_reports_the_breaking_point(
    fake_gateway: str, tmp_path: Path
) -> None:
    scenario = write(
        tmp_path,
        """
executor: ramping-vus
stages: [{duration: 30s, target: 10}]
thinkTime: 0.1s
journeys: {product: 1}
thresholds:
  http_req_duration:
    - {threshold: "max<0.001", abortOnFail: true, delayAbortEval: 2s}
""",
    )
    started = time.monotonic()
    run = run_loadtest(scenario, fake_gateway, tmp_path / "out")
    assert run.returncode == 99, run.output
    assert time.monotonic() - started < 20, "the run should stop long before its 30 s"
    summary = run.summary
    assert summary["run"]["aborted"] and "max<0.001" in summary["run"]["abort_reason"]
    bp = summary["breaking_point"]
    assert bp["unit"] == "VUs" and bp["stage"] == 1 and 0 < bp["target"] < 10
    assert "breaking point at" in run.output


def test_a_bad_scenario_exits_2_naming_the_problem(tmp_path: Path) -> None:
    scenario = write(tmp_path, "executor: ramping-vus\nstages: [{duration: 10s, taget: 5}]\n")
    run = run_loadtest(scenario, "http://127.0.0.1:9", tmp_path / "out")
    assert run.returncode == 2
    assert "stages[0]: must be {duration: <time>, target: <number>}" in run.output


def test_an_unreachable_target_exits_1_with_a_hint(tmp_path: Path) -> None:
    run = run_loadtest(
        "smoke", f"http://127.0.0.1:{free_port()}", tmp_path / "out", "--variant", "ci"
    )
    assert run.returncode == 1
    assert "is not reachable" in run.output and "make local" in run.output


def test_the_locustfile_runs_a_scenario_under_the_locust_command_line(
    fake_gateway: str, tmp_path: Path
) -> None:
    """The entry point of the chart's master and workers, here standalone and headless."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            "loadtests/locustfile.py",
            "--headless",
            "--host",
            fake_gateway,
            "--only-summary",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "SCENARIO": "smoke",
            "VARIANT": "ci",
            "DURATION": "4s",
            "LOADTEST_METRICS": "off",
            "LOADTEST_RESULTS": str(tmp_path),
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "result     PASSED" in proc.stdout
    summary = Run(0, "", tmp_path).summary
    assert (summary["scenario"]["name"], summary["scenario"]["variant"]) == ("smoke", "ci")
    assert summary["load"]["iterations"] > 0 and summary["total"]["requests"] > 0
