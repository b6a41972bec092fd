"""Noise bands: how far from 1 the ratio of two identical configurations reaches on a target,
measured by an A/A run and kept per experiment and target in `experiments/<name>/noise.json`;
a figure differs only by more than its band."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from experiments import stats

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BAND = 0.05  # the noise band of a metric no A/A run has measured yet


def noise_path(experiment: str) -> Path:
    return REPO / "experiments" / experiment / "noise.json"


def noise_bands(experiment: str, target: str) -> tuple[dict[str, float], str]:
    """The noise band of each metric from the experiment's A/A run on this target
    (`experiments/<name>/noise.json`), and where it comes from."""
    path = noise_path(experiment)
    entry = json.loads(path.read_text()).get(target) if path.exists() else None
    if not entry:
        return {}, (
            f"no A/A run on {target} yet (`python -m experiments run {experiment} --aa`):"
            f" every metric's band is the default {DEFAULT_BAND:.0%}"
        )
    return dict(entry["bands"]), (
        f"bands from the A/A run of {entry['measured_at']} ({entry['rounds']} rounds,"
        f" `{entry['source']}`)"
    )


def save_noise_bands(data: dict[str, Any], out: Path) -> dict[str, float]:
    """After a full A/A run: each metric's band into `experiments/<name>/noise.json`."""
    meta, st = data["meta"], data["stats"]
    again = meta["arms"][1]["key"]
    bands = {}
    for key, entry in st["metrics"].items():
        ratio = entry["ratios"].get(again) or {}
        band = stats.noise_band(
            stats.Interval(
                ratio.get("value", math.nan),
                ratio.get("low", math.nan),
                ratio.get("high", math.nan),
                ratio.get("n", 0),
            )
        )
        if not math.isnan(band):
            bands[key] = band
    path = noise_path(meta["experiment"])
    stored = json.loads(path.read_text()) if path.exists() else {}
    rel = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    stored[meta["target"]] = {
        "measured_at": meta["started_at"],
        "rounds": st.get("rounds"),
        "source": str(rel),
        "machine": meta["machine"].get("hostname"),
        "bands": bands,
    }
    path.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    return bands
