"""Report generation from a small synthetic results folder (no stack needed)."""

import json
import math
import re
from pathlib import Path

import pytest

from experiments import noise, writeup
from experiments.comparison import summarize
from experiments.framework import Arm, Experiment, LoadProfile
from experiments.records import write_raw


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
        "loadgen_valid": not (arm == "B" and rep == 2),  # one saturated phase
        "loadgen_cpu": 0.95 if (arm == "B" and rep == 2) else 0.3,
        "start_delay_p95_ms": 1.0,
        "cpu_ms_per_request": 1.0,
        "host_cpu_percent": 50.0,
        "resources": {"hit_ratio": 0.9},
    }


ROUNDS = [
    (100, 48, 50, 50),
    (104, 51, 50, 49.5),
    (98, 50, 50.2, 50.1),
    (101, 49, 49.8, 50.3),
    (99, 52, 50.1, 49.9),
]  # per round: p95 of A, of B, throughput of A, of B


def write_folder(
    out: Path, smoke: bool = False, aa: bool = False, rounds: list[tuple[float, ...]] = ROUNDS
) -> Path:
    experiment = _experiment()
    records = []
    for rep, (pa, pb, ra, rb) in enumerate(rounds, start=1):
        pair = [_record("A", rep, pa, ra), _record("B", rep, pb, rb)]
        records += pair if rep % 2 else pair[::-1]  # A B, B A, ...
    for index, record in enumerate(records):
        record["index"] = index
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
        "smoke_run": smoke,
        "aa": aa,
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
        "schedule": [f"{r['arm']}{r['rep']}" for r in records],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_raw(out, meta, records, history)
    (out / "stats.json").write_text(json.dumps(summarize(["A", "B"], records)))
    writeup.write(out, headline=list(experiment.headline), limits=list(experiment.limits))
    return out


@pytest.fixture(autouse=True)
def noise_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """noise.json of the synthetic experiment, kept out of the repository."""
    path = tmp_path / "noise.json"
    monkeypatch.setattr(noise, "noise_path", lambda experiment: path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "full")


@pytest.fixture
def smoke(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "smoke", smoke=True, rounds=ROUNDS[:1])


def test_report_has_table_plots_conclusion_limits_and_smoke_label(smoke: Path) -> None:
    folder = smoke
    text = (folder / "report.md").read_text()
    assert "SMOKE RUN" in text
    for section in ("## Results", "## Plots", "## Conclusion", "## Limits"):
        assert section in text
    for png in ("percentiles.png", "over_time.png", "distributions.png"):
        assert (folder / png).stat().st_size > 5000
        assert f"]({png})" in text
    assert "Synthetic data." in text
    assert (folder / "phases.csv").read_text().count("\n") == 3  # header + 2 phases


def test_a_smoke_run_prints_no_verdict(smoke: Path) -> None:
    conclusion = (smoke / "report.md").read_text().split("## Conclusion")[1].split("## Limits")[0]
    assert conclusion.strip() == "smoke run: no conclusion"


def test_report_numbers_match_the_raw_data(folder: Path) -> None:
    text = (folder / "report.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| p95 latency"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    a, b, ratio = (float(re.match(r"[\d.]+", c).group()) for c in cells[1:4])  # type: ignore[union-attr]
    assert a == 100.0  # median of 100, 104, 98, 101, 99
    assert b == 50.0  # median of 48, 51, 50, 49, 52
    ratios = [pb / pa for pa, pb, *_ in ROUNDS]
    assert ratio == pytest.approx(math.prod(ratios) ** (1 / 5), abs=0.001)  # geometric mean


def test_conclusion_names_only_differences_the_intervals_support(folder: Path) -> None:
    conclusion = (folder / "report.md").read_text().split("## Conclusion")[1].split("## Limits")[0]
    assert "differs: p95 latency (ms): 100.0 → 50.0" in conclusion
    assert (
        "no difference shown" in conclusion
        and "throughput" in conclusion.split("no difference shown")[1]
    )
    assert "default 5%" in conclusion  # no A/A run of this experiment yet
    text = (folder / "report.md").read_text()
    assert "could not carry" in text and "phase 3 (B2): generator CPU 95.0 %" in text


def test_an_aa_run_gives_no_verdict_and_sets_the_bands_later_runs_use(
    tmp_path: Path, noise_file: Path
) -> None:
    # the baseline against itself: p95 within a few % round by round
    aa_rounds = [
        (100, 103, 50, 50),
        (104, 101, 50, 49.5),
        (98, 99, 50.2, 50.1),
        (101, 97, 49.8, 50.3),
        (99, 102, 50.1, 49.9),
    ]
    aa = write_folder(tmp_path / "aa", aa=True, rounds=aa_rounds)
    text = (aa / "report.md").read_text()
    assert "A/A RUN" in text and "differs:" not in text
    bands = json.loads(noise_file.read_text())["local"]["bands"]
    assert 0.01 < bands["p95_ms"] < 0.2

    # a later A/B run with a 3 % effect: its interval excludes 1, but the A/A band is wider
    assert bands["p95_ms"] > 0.035
    small = [
        (pa, pa * f, ra, rb)
        for (pa, _, ra, rb), f in zip(ROUNDS, (1.03, 1.031, 1.029, 1.03, 1.032), strict=True)
    ]
    ab = write_folder(tmp_path / "ab", rounds=small)
    conclusion = (ab / "report.md").read_text().split("## Conclusion")[1]
    assert "bands from the A/A run" in conclusion
    assert "within the noise band: p95 latency" in conclusion
    assert "differs: p95" not in conclusion


def test_readme_reference_section_is_replaced_not_appended(smoke: Path, tmp_path: Path) -> None:
    folder = smoke
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n## Reference run\n\n<!-- reference-run:start -->\nSTALE-FIGURES\n"
        "<!-- reference-run:end -->\n\n## After\n"
    )
    writeup.refresh_readme(readme, folder)
    writeup.refresh_readme(readme, folder)
    text = readme.read_text()
    assert text.count("<!-- reference-run:start -->") == 1
    assert "STALE-FIGURES" not in text and "## After" in text and "SMOKE RUN" in text
    assert "| p95 latency (ms) |" in text
