"""Open-loop load, because closed loops lie (coordinated omission).

The system under test is a stand-in with a fixed capacity of 20 requests/s (one request at a
time, 50 ms each) that records when each request arrived and how long it really waited. We offer
it 30 iterations/s for 6 s, one request per iteration:

- the open-loop executor (constant-arrival-rate) keeps starting iterations on schedule, so the
  server receives 30 requests/s (within 5 %), a queue builds up, and the latency the generator
  reports is the real one, seconds long, as the server measured it;
- a closed-loop run of the same size (10 VUs with 0.3 s think time: 30 iterations/s on a fast
  system) waits for each answer before sending the next request, so it sends visibly less and
  reports a latency that hides the queue it would have seen.

Behavioural assertions with generous margins, not a benchmark.
"""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtests.tests.helpers import run_distributed, run_loadtest, serve

RATE, SECONDS = 30, 6
EXPECTED = RATE * SECONDS
JOURNEY = "{'loadtests.tests.journeys_for_tests:slow': 1}"

OPEN_LOOP = f"""
executor: constant-arrival-rate
rate: {RATE}
duration: {SECONDS}s
preAllocatedVUs: 5
maxVUs: 300
gracefulStop: 15s
thinkTime: 0s
journeys: {JOURNEY}
"""

CLOSED_LOOP = f"""
executor: constant-vus
vus: 10
duration: {SECONDS}s
gracefulStop: 5s
thinkTime: 0.3s
journeys: {JOURNEY}
"""


@pytest.fixture(scope="module")
def slow_server() -> Iterator[str]:
    with serve("loadtests.tests.fake_gateway:slow", env={"SLOW_SERVICE_TIME": "0.05"}) as url:
        yield url


def call(url: str, method: str = "GET") -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as response:
        return json.load(response)


def measure(
    slow_server: str, scenario: str, tmp_path: Path, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the scenario; return (the generator's summary, what the server saw)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(scenario)
    call(f"{slow_server}/reset", "POST")
    run = run_loadtest(path, slow_server, tmp_path / name)
    assert run.returncode == 0, run.output
    return run.summary, call(f"{slow_server}/stats")


def p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95)]


def test_open_loop_holds_the_rate_and_reports_the_real_latency_where_closed_loop_does_not(
    slow_server: str, tmp_path: Path
) -> None:
    open_summary, open_seen = measure(slow_server, OPEN_LOOP, tmp_path, "open")
    arrivals = open_seen["arrivals"]
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert abs(len(arrivals) - EXPECTED) <= 0.05 * EXPECTED, (
        f"server received {len(arrivals)} of {EXPECTED}"
    )
    assert abs(achieved - RATE) <= 0.05 * RATE, (
        f"server saw {achieved:.1f} requests/s, target {RATE}"
    )
    assert open_summary["load"]["dropped_iterations"] == 0

    real_p95_ms = p95(open_seen["latencies"]) * 1000
    reported_p95_ms = open_summary["total"]["p95"]
    assert real_p95_ms > 1000, "the offered rate exceeds capacity, so a queue must build up"
    assert 0.8 * real_p95_ms <= reported_p95_ms <= 1.25 * real_p95_ms + 50

    closed_summary, closed_seen = measure(slow_server, CLOSED_LOOP, tmp_path, "closed")
    assert len(closed_seen["arrivals"]) < 0.8 * EXPECTED, (
        "closed loop should under-send against a slow system"
    )
    assert closed_summary["total"]["p95"] < reported_p95_ms / 3, (
        "closed loop should under-report the latency"
    )


def test_two_workers_interleave_one_schedule_instead_of_firing_in_lockstep(
    tmp_path: Path,
) -> None:
    """Locust master + 2 workers at 20 it/s: worker i takes iterations i, i + 2, ... of the
    whole schedule, so the server sees one request every 50 ms, not pairs every 100 ms."""
    with serve("loadtests.tests.fake_gateway:slow", env={"SLOW_SERVICE_TIME": "0.001"}) as url:
        scenario = tmp_path / "dist.yaml"
        scenario.write_text(
            "executor: constant-arrival-rate\nrate: 20\nduration: 4s\npreAllocatedVUs: 4\n"
            f"maxVUs: 40\ngracefulStop: 5s\nthinkTime: 0s\njourneys: {JOURNEY}\n"
        )
        master = run_distributed(scenario, url, tmp_path / "out")
        seen = call(f"{url}/stats")
    assert master.returncode == 0, master.stdout + master.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["load"]["iterations"] == 80
    assert summary["load"]["iterations_per_s"] == pytest.approx(20.0)
    assert summary["generator"] and "2 workers" in summary["generator"]["rule"]
    arrivals = seen["arrivals"]
    # every request the generator counts as answered reached the server (on a loaded machine a
    # few may fail to connect: they are counted as failures, not as arrivals)
    total = summary["total"]
    assert total["requests"] == 80 and total["failures"] <= 4, total
    assert len(arrivals) == total["requests"] - total["failures"]
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    # lockstep would put half the gaps near 0; interleaved, the median gap is ~50 ms
    assert gaps[len(gaps) // 2] > 0.03, gaps
