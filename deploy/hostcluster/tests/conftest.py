"""The host-cluster test's harness: the lab brought up with `make up PROVIDER=host` once per
run, a table of what was proven (with its figures) printed at the end and saved as JSON."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.hostcluster.tests.harness import (
    REPO,
    RESULTS,
    ROWS,
    TOTALS,
    Lab,
    MemoryPeak,
    run,
    snapshot,
)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.fail("the host-cluster test needs root (it runs a kubelet and changes the host)")
    before = snapshot()
    memory = MemoryPeak()
    state = Lab(before, memory)
    started = time.monotonic()
    build = run([str(REPO / "deploy/hostcluster/build.sh")], timeout=3600)
    assert build.returncode == 0, "building the cluster's programs failed"
    state.timings["build"] = time.monotonic() - started
    up_started = time.monotonic()
    up = run(["make", "up", "PROVIDER=host"], timeout=3600)
    state.timings["up"] = time.monotonic() - up_started
    try:
        assert up.returncode == 0, "make up PROVIDER=host failed (its output is above)"
        yield state
    finally:
        if not state.down:
            run(["make", "down", "PROVIDER=host"], timeout=600)
        peak = memory.stop()
        state.timings["total"] = time.monotonic() - started
        state.timings["peak_memory_gib"] = peak / 2**30
        TOTALS.update(state.timings)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    width = max(len(r[0]) for r in ROWS)
    terminalreporter.section("host cluster: what was proven")
    terminalreporter.write_line(f"{'check':<{width}}  result  figures")
    for check, result, figures in ROWS:
        terminalreporter.write_line(f"{check:<{width}}  {result:<6}  {figures}")
    if TOTALS:
        terminalreporter.write_line(
            f"wall time {TOTALS['total']:.0f} s (programs built or found {TOTALS['build']:.0f} s, "
            f"make up {TOTALS['up']:.0f} s); peak memory used on the host "
            f"{TOTALS['peak_memory_gib']:.1f} GiB above what was used before"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "report.json").write_text(
        json.dumps(
            {
                "checks": [dict(zip(("check", "result", "figures"), r, strict=True)) for r in ROWS],
                "totals": TOTALS,
            }
        )
        + "\n"
    )
