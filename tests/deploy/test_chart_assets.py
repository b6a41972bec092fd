"""The chart's copies of the dashboards and Prometheus rules never drift from dashboards/
(Helm cannot read files outside the chart, so `make chart-assets` copies them in)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy/scripts/sync-chart-assets.sh"


def test_chart_copies_match_dashboards():
    result = subprocess.run([str(SCRIPT), "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def fake_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "deploy/scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "deploy/scripts/")
    (repo / "deploy/helm/perflab/dashboards").mkdir(parents=True)
    (repo / "deploy/helm/perflab/rules").mkdir(parents=True)
    return repo


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(repo / "deploy/scripts/sync-chart-assets.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_sync_copies_updates_removes_and_check_notices(tmp_path):
    repo = fake_repo(tmp_path)
    # No dashboards/ at all yet: nothing to do, nothing stale.
    assert run(repo, "--check").returncode == 0
    (repo / "dashboards/rules").mkdir(parents=True)
    (repo / "dashboards/overview.json").write_text('{"uid": "a"}')
    (repo / "dashboards/rules/slo.yml").write_text("groups: []\n")
    check = run(repo, "--check")
    assert check.returncode == 1 and "overview.json" in check.stdout and "slo.yml" in check.stdout
    assert run(repo).returncode == 0
    assert (repo / "deploy/helm/perflab/dashboards/overview.json").read_text() == '{"uid": "a"}'
    assert (repo / "deploy/helm/perflab/rules/slo.yml").exists()
    assert run(repo, "--check").returncode == 0
    # Edited and deleted upstream: the copy follows.
    (repo / "dashboards/overview.json").write_text('{"uid": "b"}')
    (repo / "dashboards/rules/slo.yml").unlink()
    assert run(repo, "--check").returncode == 1
    assert run(repo).returncode == 0
    assert (repo / "deploy/helm/perflab/dashboards/overview.json").read_text() == '{"uid": "b"}'
    assert not (repo / "deploy/helm/perflab/rules/slo.yml").exists()
