"""Short real runs against a real stack: the CI variants of smoke and spike pass their
thresholds and leave their results, and an impossible threshold fails the run.

The stack is the test session's isolated copy (the ``stack`` fixture), or the one at TARGET
when that variable is set (e.g. TARGET=local for ``make local``, or the cluster's gateway);
a TARGET that does not answer fails the tests, it never skips them.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from loadtests.scenario import resolve_target
from loadtests.tests.helpers import run_loadtest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(request: pytest.FixtureRequest) -> str:
    if not os.environ.get("TARGET"):
        url: str = request.getfixturevalue("gateway_url")
        return url
    target = resolve_target(os.environ["TARGET"])
    try:
        with urllib.request.urlopen(f"{target}/healthz", timeout=3) as response:
            if response.status == 200:
                return target
    except OSError as error:
        pytest.fail(f"the gateway at TARGET={target} does not answer /healthz: {error}")
    pytest.fail(f"the gateway at TARGET={target} is not healthy")


@pytest.mark.parametrize("scenario", ["smoke", "spike"])
def test_ci_variant_passes_against_the_stack(gateway: str, scenario: str, tmp_path: Path) -> None:
    run = run_loadtest(scenario, gateway, tmp_path / scenario, "--variant", "ci")
    assert run.returncode == 0, run.output
    summary = run.summary
    assert summary["target"] == gateway
    assert summary["total"]["requests"] > 0
    assert all(t["ok"] for t in summary["thresholds"])
    assert (tmp_path / scenario / "report.html").stat().st_size > 0


def test_an_impossible_threshold_fails_against_the_stack(gateway: str, tmp_path: Path) -> None:
    scenario = tmp_path / "impossible.yaml"
    scenario.write_text(
        "executor: constant-vus\nvus: 1\nduration: 3s\nthinkTime: 0.1s\njourneys: {product: 1}\n"
        "thresholds: {http_req_duration: ['p(99)<0.001']}\n"
    )
    run = run_loadtest(scenario, gateway, tmp_path / "out")
    assert run.returncode == 99, run.output
    assert not run.summary["thresholds"][0]["ok"]
