"""Several scenarios in one file (k6's ``scenarios:``), run for real against the in-memory fake
gateway: each scenario starts at its own startTime with its own executor and journeys, every
request is tagged with its scenario, and thresholds filtered by scenario pass or fail on that
scenario's figures alone."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.tests.helpers import REPO, run_distributed, run_loadtest

# browse: 10 iterations/s of one product read from 0 s to 4 s; checkout: one closed-loop VU
# buying from 2 s to 4 s. Thresholds are added per test.
TWO_SCENARIOS = """
name: two
thinkTime: 0s
scenarios:
  browse:
    executor: constant-arrival-rate
    rate: 10
    duration: 4s
    preAllocatedVUs: 5
    journeys: {product: 1}
  checkout:
    executor: constant-vus
    startTime: 2s
    vus: 1
    duration: 2s
    journeys: {buy: 1}
    gracefulStop: 3s
"""


def write(tmp_path: Path, thresholds: str) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_SCENARIOS + "thresholds:\n" + thresholds)
    return path


def test_the_second_scenario_starts_at_its_offset_with_its_own_journeys(
    fake_gateway: str, tmp_path: Path
) -> None:
    scenario = write(
        tmp_path,
        '  "iterations{scenario:browse}": ["count==40"]\n'
        '  "http_reqs{scenario:checkout}": ["count>0"]\n',
    )
    raw = tmp_path / "requests.csv"
    run = run_loadtest(scenario, fake_gateway, tmp_path / "out", "--raw", str(raw))
    assert run.returncode == 0, run.output

    with raw.open() as fh:
        rows = list(csv.DictReader(fh))
    sent = {
        name: sorted(float(r["time"]) for r in rows if r["scenario"] == name)
        for name in ("browse", "checkout")
    }
    assert {r["scenario"] for r in rows} == {"browse", "checkout"}
    # browse's first iteration is due at 0 s, checkout's VU starts at 2 s: about 20 browse
    # requests come before the first checkout request, none of checkout's before 2 s
    offset = sent["checkout"][0] - sent["browse"][0]
    assert 1.9 <= offset < 3.0, offset
    assert 15 <= sum(t < sent["checkout"][0] for t in sent["browse"]) <= 25

    summary = run.summary
    browse, checkout = summary["scenarios"]
    assert (browse["name"], browse["executor"], browse["start_s"]) == (
        "browse",
        "constant-arrival-rate",
        0,
    )
    assert (checkout["name"], checkout["executor"], checkout["start_s"]) == (
        "checkout",
        "constant-vus",
        2,
    )
    # each scenario's journeys only: browse reads products, checkout places and polls orders
    assert {e["name"] for e in browse["endpoints"]} == {"/api/products/{id}"}
    assert "/api/orders" in {e["name"] for e in checkout["endpoints"]}
    assert browse["iterations"] == 40 and browse["dropped_iterations"] == 0
    assert checkout["iterations"] > 0
    # the run's figures are the sum of its scenarios'
    requests = [s["total"]["requests"] for s in (summary, browse, checkout)]
    assert requests[0] == requests[1] + requests[2]
    assert summary["load"]["iterations"] == browse["iterations"] + checkout["iterations"]
    assert "browse    constant-arrival-rate" in run.output  # the summary's scenario table


@pytest.mark.parametrize("failing", ["browse", "checkout"])
def test_thresholds_filtered_by_scenario_pass_or_fail_independently(
    fake_gateway: str, tmp_path: Path, failing: str
) -> None:
    """The same impossible condition on one scenario's requests fails the run, while the
    other scenario's identical metric with a generous limit passes."""
    passing = "checkout" if failing == "browse" else "browse"
    scenario = write(
        tmp_path,
        f'  "http_req_duration{{scenario:{failing}}}": ["max<0.001"]\n'
        f'  "http_req_duration{{scenario:{passing}}}": ["p(95)<5000"]\n'
        f'  "http_req_failed{{scenario:{passing}}}": ["rate<0.01"]\n',
    )
    run = run_loadtest(scenario, fake_gateway, tmp_path / "out")
    assert run.returncode == 99, run.output
    verdicts = {(t["metric"], t["condition"]): t["ok"] for t in run.summary["thresholds"]}
    assert verdicts == {
        (f"http_req_duration{{scenario:{failing}}}", "max<0.001"): False,
        (f"http_req_duration{{scenario:{passing}}}", "p(95)<5000"): True,
        (f"http_req_failed{{scenario:{passing}}}", "rate<0.01"): True,
    }
    assert f"FAIL  http_req_duration{{scenario:{failing}}}" in run.output


def test_a_single_scenario_file_is_the_scenario_default(fake_gateway: str, tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(
        "executor: constant-arrival-rate\nrate: 5\nduration: 2s\npreAllocatedVUs: 2\n"
        "thinkTime: 0s\njourneys: {product: 1}\n"
        "thresholds:\n  'iterations{scenario:default}': ['count==10']\n"
    )
    run = run_loadtest(path, fake_gateway, tmp_path / "out")
    assert run.returncode == 0, run.output
    [default] = run.summary["scenarios"]
    assert (default["name"], default["iterations"]) == ("default", 10)


def test_the_locust_command_line_refuses_closed_loop_scenarios_among_several(
    tmp_path: Path,
) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_SCENARIOS)
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SCENARIO": str(path), "LOADTEST_METRICS": "off"},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "has closed-loop scenarios among several" in output
    assert "(browse [constant-arrival-rate], checkout [constant-vus])" in output
    assert "python -m loadtests run" in output


def test_a_master_and_two_workers_run_several_arrival_rate_scenarios(
    fake_gateway: str, tmp_path: Path
) -> None:
    """The chart's way: each worker takes its interleaved share of every scenario's schedule
    (from the scenario's startTime) and reports each scenario's figures; the master judges
    per-scenario thresholds on their sum."""
    path = tmp_path / "open.yaml"
    path.write_text(
        """
thinkTime: 0s
gracefulStop: 3s
scenarios:
  reads:
    executor: constant-arrival-rate
    rate: 10
    duration: 4s
    preAllocatedVUs: 2
    maxVUs: 10
    journeys: {product: 1}
  orders:
    executor: constant-arrival-rate
    startTime: 2s
    rate: 4
    duration: 2s
    preAllocatedVUs: 2
    maxVUs: 10
    journeys: {buy: 1}
thresholds:
  "iterations{scenario:reads}": ["count==40"]
  "iterations{scenario:orders}": ["count==8"]
"""
    )
    master = run_distributed(path, fake_gateway, tmp_path / "out")
    assert master.returncode == 0, master.stdout + master.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    reads, orders = summary["scenarios"]
    assert (reads["name"], reads["iterations"], reads["dropped_iterations"]) == ("reads", 40, 0)
    assert (orders["name"], orders["iterations"], orders["start_s"]) == ("orders", 8, 2)
    assert {e["name"] for e in reads["endpoints"]} == {"/api/products/{id}"}
    assert "/api/orders" in {e["name"] for e in orders["endpoints"]}
    assert all(t["ok"] for t in summary["thresholds"]), summary["thresholds"]
    assert "2 workers" in summary["generator"]["rule"]


def test_each_scenario_has_its_own_graceful_ramp_down(fake_gateway: str, tmp_path: Path) -> None:
    """Two closed-loop scenarios whose iterations linger 3 s are taken from 3 VUs to 0 after
    2 s: the one with gracefulRampDown 0s has its iterations cut off, the one with 10s lets
    them finish (Locust's own stop timeout is one for the whole run)."""
    journeys = "loadtests.tests.journeys_for_tests"
    path = tmp_path / "ramp.yaml"
    ramp = "[{duration: 2s, target: 3}, {duration: 1s, target: 0}, {duration: 4s, target: 0}]"
    path.write_text(
        f"""
thinkTime: 0s
gracefulStop: 0s
journeys: {{"{journeys}:linger": 1}}
scenarios:
  abrupt: {{executor: ramping-vus, startVUs: 3, stages: {ramp}, gracefulRampDown: 0s}}
  patient: {{executor: ramping-vus, startVUs: 3, stages: {ramp}, gracefulRampDown: 10s}}
"""
    )
    run = run_loadtest(path, fake_gateway, tmp_path / "out")
    assert run.returncode == 0, run.output
    abrupt, patient = run.summary["scenarios"]
    assert abrupt["iterations"] >= 3 and patient["iterations"] >= 3
    assert abrupt["interrupted_iterations"] > 0
    assert patient["interrupted_iterations"] == 0
    assert patient["iteration_duration"]["max"] >= 3000


def test_abort_on_fail_of_one_scenario_stops_the_whole_run(
    fake_gateway: str, tmp_path: Path
) -> None:
    scenario = write(
        tmp_path,
        '  "http_reqs{scenario:browse}":\n'
        '    - {threshold: "count<5", abortOnFail: true, delayAbortEval: 1s}\n',
    )
    run = run_loadtest(scenario, fake_gateway, tmp_path / "out")
    assert run.returncode == 99, run.output
    summary = run.summary
    assert summary["run"]["aborted"] and summary["run"]["duration_s"] < 4
    assert summary["breaking_point"]["threshold"] == "http_reqs{scenario:browse}: count<5"
    assert "breaking point at" in run.output
