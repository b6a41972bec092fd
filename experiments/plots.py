"""The PNG plots of a results folder: latency percentiles per arm, every phase over time, the
distributions of the phases' figures, and the USL fit of a sweep."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def arm_colors(meta: dict[str, Any]) -> dict[str, str]:
    return {a["key"]: COLORS[i % len(COLORS)] for i, a in enumerate(meta["arms"])}


def arm_labels(meta: dict[str, Any]) -> dict[str, str]:
    return {a["key"]: f"{a['key']}: {a['label']}" for a in meta["arms"]}


def plot_percentiles(data: dict[str, Any], path: Path) -> None:
    meta, st = data["meta"], data["stats"]["metrics"]
    arms = [a["key"] for a in meta["arms"]]
    colors, labels = arm_colors(meta), arm_labels(meta)
    pcts = ["p50_ms", "p95_ms", "p99_ms"]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        vals = [st[p]["arms"][arm] for p in pcts]
        mid = np.array([v["value"] for v in vals], dtype=float)
        err = np.array(
            [[v["value"] - v["low"] for v in vals], [v["high"] - v["value"] for v in vals]],
            dtype=float,
        )
        xs = np.arange(len(pcts)) + (i - (len(arms) - 1) / 2) * width
        ax.bar(
            xs, mid, width, yerr=np.nan_to_num(err), capsize=3, color=colors[arm], label=labels[arm]
        )
    ax.set_xticks(np.arange(len(pcts)), ["p50", "p95", "p99"])
    ax.set_ylabel("latency, ms (median of phases, 95 % CI)")
    finite = [st[p]["arms"][a]["value"] for p in pcts for a in arms]
    finite = [v for v in finite if v and not math.isnan(v)]
    if finite and max(finite) / max(min(finite), 1e-9) > 50:
        ax.set_yscale("log")
    ax.set_title(f"{meta['experiment']}: latency percentiles ({focus(data)})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def focus(data: dict[str, Any]) -> str:
    return str(data["phases"][0]["focus"]) if data["phases"] else ""


def plot_over_time(data: dict[str, Any], path: Path) -> None:
    meta, history = data["meta"], data["history"]
    colors, labels = arm_colors(meta), arm_labels(meta)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    seen: set[str] = set()
    for phase in sorted({h["phase"] for h in history}):
        rows = [h for h in history if h["phase"] == phase]
        arm = rows[0]["arm"]
        t = [float(r["elapsed_s"]) for r in rows]
        rps = _per_second([float(r.get("requests") or "nan") for r in rows], t)
        p95 = [float(r["p95_ms"] or "nan") for r in rows]
        label = labels.get(arm) if arm not in seen else None
        seen.add(arm)
        top.plot(t, rps, color=colors.get(arm), alpha=0.7, lw=1, label=label)
        bottom.plot(t, p95, color=colors.get(arm), alpha=0.7, lw=1)
    top.set_ylabel("requests/s (all), per second")
    bottom.set_ylabel("p95 ms (runner's window)")
    bottom.set_xlabel("seconds into the phase")
    top.set_title(f"{meta['experiment']}: every phase over time")
    top.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _per_second(cumulative: list[float], t: list[float]) -> list[float]:
    """Per-interval rate from the runner's cumulative request count."""
    out = [math.nan]
    for i in range(1, len(t)):
        dt = t[i] - t[i - 1]
        out.append((cumulative[i] - cumulative[i - 1]) / dt if dt > 0 else math.nan)
    return out


def plot_distributions(data: dict[str, Any], path: Path) -> None:
    meta, history = data["meta"], data["history"]
    arms = [a["key"] for a in meta["arms"]]
    colors, labels = arm_colors(meta), arm_labels(meta)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    per_second = [
        [float(h["p95_ms"]) for h in history if h["arm"] == arm and h.get("p95_ms")] for arm in arms
    ]
    parts = left.boxplot(per_second, showfliers=True, patch_artist=True)
    for patch, arm in zip(parts["boxes"], arms, strict=True):
        patch.set_facecolor(colors[arm])
        patch.set_alpha(0.5)
    left.set_xticks(range(1, len(arms) + 1), arms)
    left.set_ylabel("p95 ms, one value per second")
    left.set_title("per-second p95")
    rng = np.random.default_rng(0)
    for i, arm in enumerate(arms):
        values = [p["p95_ms"] for p in data["phases"] if p["arm"] == arm and p["p95_ms"]]
        xs = i + 1 + rng.uniform(-0.08, 0.08, len(values))
        right.scatter(xs, values, color=colors[arm], label=labels[arm], zorder=3)
    right.set_xticks(range(1, len(arms) + 1), arms)
    right.set_ylabel("p95 ms of the whole phase")
    right.set_title("one point per phase")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_usl(data: dict[str, Any], path: Path) -> None:
    usl = data["stats"]["analysis"]["figures"]["usl"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(usl["n"], usl["x"], label="measured (one point per phase)", zorder=3)
    top = max(usl["n"])
    peak = usl["peak_concurrency"]
    n = np.linspace(1, 1.5 * top if peak > 4 * top else max(top, 1.3 * peak), 200)
    lam, sigma, kappa = usl["lambda"], usl["sigma"], usl["kappa"]
    ax.plot(
        n,
        lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)),
        color="C1",
        label=f"USL fit: lambda={lam:.1f}/s sigma={sigma:.3f} kappa={kappa:.2e}",
    )
    ax.set_xlabel("concurrency (closed-loop VUs)")
    ax.set_ylabel("throughput, req/s")
    ax.set_title(f"{data['meta']['experiment']}: Universal Scalability Law")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
