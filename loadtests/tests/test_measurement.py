"""What the runner's figures mean: rates over the schedule (the drain is reported apart),
and a run whose generator was saturated is declared invalid instead of reporting its own
queueing as the system's latency."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.tests.helpers import run_loadtest

JOURNEYS = "loadtests.tests.journeys_for_tests"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_an_open_loop_run_with_a_long_drain_reports_the_offered_rate(
    fake_gateway: str, tmp_path: Path
) -> None:
    """10 iterations/s for 3 s, each iteration lingering 3 s after its request: the run lasts
    about 6 s, but the load was 10/s (the old runner divided by 6 s and reported ~5/s)."""
    scenario = write(
        tmp_path,
        f"""
executor: constant-arrival-rate
rate: 10
duration: 3s
preAllocatedVUs: 10
maxVUs: 60
gracefulStop: 10s
thinkTime: 0s
journeys: {{"{JOURNEYS}:linger": 1}}
""",
    )
    raw = tmp_path / "requests.jsonl"
    run = run_loadtest(scenario, fake_gateway, tmp_path / "out", "--raw", str(raw))
    assert run.returncode == 0, run.output
    summary = run.summary
    assert summary["load"]["iterations"] == 30
    assert summary["run"]["schedule_s"] == pytest.approx(3.0)
    assert summary["run"]["duration_s"] > 5.5  # the drain happened
    assert summary["load"]["iterations_per_s"] == pytest.approx(10.0)
    assert summary["total"]["rate"] == pytest.approx(10.0)
    assert summary["drain"]["seconds"] > 2.5
    assert summary["drain"]["iterations_finished"] >= 20  # the last ones ended in the drain
    delay = summary["load"]["iteration_start_delay"]
    assert delay["max"] is not None and delay["p95"] <= delay["max"]
    assert summary["data"]["sent"] > 30 * 50 and summary["data"]["received"] > 30 * 100
    assert "drain" in run.output and "iteration_start_delay" in run.output

    # the raw output: one JSON line per request, for the user's own analysis
    rows = [json.loads(line) for line in raw.read_text().splitlines()]
    assert len(rows) == 30
    assert {r["name"] for r in rows} == {"/api/products/{id}"}
    assert all(r["method"] == "GET" and r["failed"] == 0 and r["duration_ms"] > 0 for r in rows)
    assert sorted(r["time"] for r in rows)[0] > 1.7e9  # Unix seconds


def test_a_saturated_generator_invalidates_the_run(fake_gateway: str, tmp_path: Path) -> None:
    scenario = write(
        tmp_path,
        f"""
executor: constant-arrival-rate
rate: 50
duration: 5s
preAllocatedVUs: 20
maxVUs: 200
gracefulStop: 5s
thinkTime: 0s
journeys: {{"{JOURNEYS}:burn": 1}}
thresholds:
  http_req_failed: ["rate<0.5"]
""",
    )
    run = run_loadtest(scenario, fake_gateway, tmp_path / "out")
    assert run.returncode == 98, run.output
    assert "WARNING: generator saturated" in run.output
    assert "INVALID: the load generator was saturated" in run.output
    summary = run.summary
    assert summary["run"]["valid"] is False
    generator = summary["generator"]
    assert generator["saturated_s"] >= 2


@pytest.mark.parametrize(("ramp_down", "interrupted"), [("0s", True), ("10s", False)])
def test_graceful_ramp_down_lets_removed_vus_finish_their_iteration(
    fake_gateway: str, tmp_path: Path, ramp_down: str, interrupted: bool
) -> None:
    """4 VUs whose iterations linger 3 s; a stage takes them to 0 after 2 s. With
    gracefulRampDown: 0s their iterations are cut off; with 10s they finish. The last stage
    (10 s at 0, where gracefulStop 0s cuts whatever still runs) leaves a late VU on a busy
    machine several seconds of slack: with 5 s one such iteration was cut once."""
    scenario = write(
        tmp_path,
        f"""
executor: ramping-vus
startVUs: 4
stages: [{{duration: 2s, target: 4}}, {{duration: 1s, target: 0}}, {{duration: 10s, target: 0}}]
gracefulRampDown: {ramp_down}
gracefulStop: 0s
thinkTime: 0s
journeys: {{"{JOURNEYS}:linger": 1}}
""",
    )
    run = run_loadtest(scenario, fake_gateway, tmp_path / "out")
    assert run.returncode == 0, run.output
    load = run.summary["load"]
    assert load["iterations"] >= 4
    assert (load["interrupted_iterations"] > 0) is interrupted
