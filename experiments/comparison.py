"""stats.json: per metric, each arm's median of its phases with their range, and each change's
paired ratio to the baseline (round by round) with its 95 % t-interval, or the rank test where
there is no ratio; and the experiment's own analysis."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from experiments import stats
from experiments.framework import Experiment
from experiments.records import METRICS


def write_stats(
    out: Path, experiment: Experiment, meta: dict[str, Any], records: list[dict[str, Any]]
) -> None:
    """stats.json of a run's own arms (an A/A run has no analysis)."""
    summary = summarize([a["key"] for a in meta["arms"]], records)
    if experiment.analysis is not None and not meta.get("aa"):
        text, figures = experiment.analysis({"records": records, "meta": meta})
        summary["analysis"] = {"markdown": text, "figures": figures}
    (out / "stats.json").write_text(json.dumps(summary, indent=2, default=str))


def metric_values(records: list[dict[str, Any]], arm: str, key: str) -> list[float]:
    values = []
    for r in records:
        if r["arm"] != arm:
            continue
        v = r.get("resources", {}).get(key) if key not in r else r.get(key)
        values.append(float(v) if v is not None else math.nan)
    return values


def round_values(
    records: list[dict[str, Any]], arm: str, key: str, rounds: list[int]
) -> list[float]:
    """One value per round (nan where the arm has no phase in that round)."""
    by_round = {r["rep"]: r for r in records if r["arm"] == arm}
    values = []
    for rep in rounds:
        r = by_round.get(rep)
        v = None if r is None else (r.get("resources", {}).get(key) if key not in r else r.get(key))
        values.append(float(v) if v is not None else math.nan)
    return values


def summarize(arms: list[str], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric and arm: the median of its phases and their range; per change arm: the
    paired ratio to the baseline (round by round) with its 95 % t-interval, and for metrics
    whose baseline is 0 (no ratio) the p-value of an exact rank test."""
    keys = list(METRICS)
    for r in records:
        keys += [k for k in r.get("resources", {}) if k not in keys]
    baseline = arms[0]
    rounds = sorted({r["rep"] for r in records})
    out: dict[str, Any] = {
        "baseline": baseline,
        "rounds": len(rounds),
        "method": "paired per-round ratios; geometric mean with a 95 % t-interval on log ratios",
        "metrics": {},
    }
    for key in keys:
        paired = {arm: round_values(records, arm, key, rounds) for arm in arms}
        entry: dict[str, Any] = {"label": METRICS.get(key, key), "arms": {}, "ratios": {}}
        for arm in arms:
            values = metric_values(records, arm, key)
            entry["arms"][arm] = stats.spread(values).as_dict() | {"values": values}
            if arm != baseline:
                entry["ratios"][arm] = stats.paired_ratio_ci(
                    paired[baseline], paired[arm]
                ).as_dict()
                entry["ratios"][arm]["rank_p"] = stats.rank_test(
                    metric_values(records, baseline, key), values
                )
        out["metrics"][key] = entry
    return out
