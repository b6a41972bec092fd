"""Report generation from a small synthetic results folder (no stack needed)."""

import json
import re
from pathlib import Path

import pytest

from experiments import report, runner
from experiments.framework import Arm, Experiment, LoadProfile


def _experiment() -> Experiment:
    return Experiment(
        name="synthetic",
        title="a synthetic A/B",
        question="Does B halve the latency?",
        hypothesis="Yes.",
        change="a flag",
        arms=[Arm("A", "flag off"), Arm("B", "flag on")],
        load=LoadProfile(journeys={"product": 1}, rate=10, duration_s=5, focus="/x"),
        headline=("p95_ms", "throughput_rps", "error_rate"),
        limits=("Synthetic data.",),
    )


def _record(arm: str, rep: int, p95: float, rps: float) -> dict[str, object]:
    return {
        "index": rep,
        "arm": arm,
        "label": arm,
        "rep": rep,
        "x": None,
        "focus": "/x",
        "requests": 100,
        "throughput_rps": rps,
        "p50_ms": p95 / 2,
        "p95_ms": p95,
        "p99_ms": p95 * 1.5,
        "error_rate": 0.0,
        "total_rps": rps,
        "dropped_iterations": 0,
        "cpu_ms_per_request": 1.0,
        "host_cpu_percent": 50.0,
        "resources": {"hit_ratio": 0.9},
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    experiment = _experiment()
    records = [
        _record("A", 1, 100, 50),
        _record("B", 1, 48, 50),
        _record("A", 2, 104, 50),
        _record("B", 2, 51, 49.5),
        _record("A", 3, 98, 50.2),
        _record("B", 3, 50, 50.1),
    ]
    history = [
        {
            "phase": f"0{i}",
            "arm": r["arm"],
            "rep": r["rep"],
            "elapsed_s": t,
            "requests_per_s": 50,
            "p95_ms": r["p95_ms"],
        }
        for i, r in enumerate(records)
        for t in (1, 2, 3)
    ]
    meta = {
        "experiment": "synthetic",
        "title": experiment.title,
        "question": experiment.question,
        "hypothesis": experiment.hypothesis,
        "change": experiment.change,
        "smoke_run": True,
        "target": "local",
        "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T00:05:00+00:00",
        "git": {"revision": "0" * 40, "dirty": False},
        "machine": {"hostname": "h", "cpus": 2, "load_average_at_start": [0.1, 0.2, 0.3]},
        "arms": [
            {
                "key": a.key,
                "label": a.label,
                "x": None,
                "load": a.load or experiment.load.scenario("p", 5),
            }
            for a in experiment.arms
        ],
        "schedule": ["A1", "B1", "A2", "B2", "A3", "B3"],
    }
    runner.write_raw(tmp_path, meta, records, history)
    (tmp_path / "stats.json").write_text(json.dumps(runner.summarize(["A", "B"], records)))
    report.write(tmp_path, headline=list(experiment.headline), limits=list(experiment.limits))
    return tmp_path


def test_report_has_table_plots_conclusion_limits_and_smoke_label(folder: Path) -> None:
    text = (folder / "report.md").read_text()
    assert "SMOKE RUN" in text
    for section in ("## Results", "## Plots", "## Conclusion", "## Limits"):
        assert section in text
    for png in ("percentiles.png", "over_time.png", "distributions.png"):
        assert (folder / png).stat().st_size > 5000
        assert f"]({png})" in text
    assert "Synthetic data." in text
    assert (folder / "phases.csv").read_text().count("\n") == 7  # header + 6 phases


def test_report_numbers_match_the_raw_data(folder: Path) -> None:
    text = (folder / "report.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| p95 latency"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    a, b, ratio = (float(re.match(r"[\d.]+", c).group()) for c in cells[1:4])  # type: ignore[union-attr]
    assert a == 100.0  # median of 100, 104, 98
    assert b == 50.0  # median of 48, 51, 50
    assert ratio == pytest.approx(0.5)


def test_conclusion_names_only_differences_the_intervals_support(folder: Path) -> None:
    conclusion = (folder / "report.md").read_text().split("## Conclusion")[1].split("## Limits")[0]
    assert "differs: p95 latency (ms): 100.0 → 50.0" in conclusion
    assert (
        "no difference shown" in conclusion
        and "throughput" in conclusion.split("no difference shown")[1]
    )


def test_readme_reference_section_is_replaced_not_appended(folder: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n## Reference run\n\n<!-- reference-run:start -->\nSTALE-FIGURES\n"
        "<!-- reference-run:end -->\n\n## After\n"
    )
    report.refresh_readme(readme, folder)
    report.refresh_readme(readme, folder)
    text = readme.read_text()
    assert text.count("<!-- reference-run:start -->") == 1
    assert "STALE-FIGURES" not in text and "## After" in text and "SMOKE RUN" in text
    assert "| p95 latency (ms) |" in text
