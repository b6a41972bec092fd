"""One experiment end to end, in its --quick (smoke) form, against a real isolated stack.

Needs PostgreSQL and Redis of the local infrastructure (started by the harness if missing);
bounded to about two minutes."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from perflab.common.localstack import Infra

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_cache_impact_smoke_run_writes_a_sane_report(read_infra: Infra, tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from experiments import runner; "
        "print('RESULT', runner.run('cache-impact', 'local', True, Path(sys.argv[1])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert folder.name.endswith("-smoke")
    for name in (
        "meta.json",
        "phases.json",
        "phases.csv",
        "history.csv",
        "stats.json",
        "report.md",
        "percentiles.png",
        "over_time.png",
        "distributions.png",
    ):
        assert (folder / name).exists(), name
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["smoke_run"] and meta["git"]["revision"] and meta["machine"]["cpus"] >= 1
    phases = json.loads((folder / "phases.json").read_text())
    assert [p["arm"] for p in phases] == ["A", "B", "A", "B"]
    for p in phases:
        # open loop at 40 it/s: the endpoint gets close to the offered rate, without errors
        assert 30 <= p["throughput_rps"] <= 45, p
        assert p["error_rate"] < 0.02
        assert 0 < p["p50_ms"] <= p["p95_ms"] <= p["p99_ms"] < 5000
        assert 0 < p["cpu_ms_per_request"] < 1000
    on = [p["resources"]["cache_hit_ratio"] for p in phases if p["arm"] == "A"]
    off = [p["resources"]["cache_hit_ratio"] for p in phases if p["arm"] == "B"]
    assert all(0.2 < r <= 1 for r in on)  # Zipf-popular products do hit the cache
    assert all(math.isnan(r) for r in off)  # no lookups at all with the cache off
    report = (folder / "report.md").read_text()
    assert "SMOKE RUN" in report and "## Limits" in report
    stats = json.loads((folder / "stats.json").read_text())
    p95_a = sorted(p["p95_ms"] for p in phases if p["arm"] == "A")
    assert stats["metrics"]["p95_ms"]["arms"]["A"]["value"] == pytest.approx(
        (p95_a[0] + p95_a[1]) / 2
    )
    assert "| p95 latency (ms) |" in report
