"""Renders the dashboards' panels from a Prometheus to PNG files, for a run seen without Grafana:

    .venv/bin/python -m dashboards.render                      # every dashboard, last 30 min
    .venv/bin/python -m dashboards.render --since 1h --dashboard perflab-overview
    .venv/bin/python -m dashboards.render --service orders --out /tmp/pngs

One PNG per dashboard (results/dashboards/<uid>.png by default), its panels in a grid, each
drawn from the same queries Grafana runs (variables substituted as in the tests). Cluster-only
panels are left out; load-generator panels are drawn when there is load-generator data.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from dashboards.queries import (
    REPO,
    Panel,
    load_dashboards,
    panels,
    substitute,
    variable_values,
)

DEFAULT_PROMETHEUS = "http://127.0.0.1:19090"
DEFAULT_OUT = REPO / "results" / "dashboards"
COLUMNS = 3
UNITS = {"s": "seconds", "reqps": "per second", "ops": "per second", "bytes": "bytes",
         "percentunit": "ratio", "percent": "%"}  # fmt: skip
_DURATION = re.compile(r"^(\d+)([smhd])$")


def seconds(duration: str) -> int:
    match = _DURATION.match(duration)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration like 30m or 1h: {duration}")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: {{label}} replaced by the series' label (empty when absent)."""
    if fmt in ("", "__auto"):
        return (
            ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "value"
        )
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()


class Renderer:
    def __init__(self, prometheus: str, start: float, end: float, values: dict[str, str]) -> None:
        self.prometheus = prometheus.rstrip("/")
        self.start, self.end = start, end
        self.step = max(5, int((end - start) / 240))
        self.values = values
        self.client = httpx.Client(timeout=30)
        self.grid = [start + i * self.step for i in range(int((end - start) // self.step) + 1)]
        self.times = [datetime.fromtimestamp(t) for t in self.grid]

    def on_grid(self, samples: list[list[Any]]) -> list[float]:
        """A series' samples on the query's time grid, NaN where it has none."""
        by_step = {round((float(t) - self.start) / self.step): float(v) for t, v in samples}
        return [by_step.get(i, math.nan) for i in range(len(self.grid))]

    def query(self, expr: str, variables: dict[str, str]) -> list[dict[str, Any]]:
        interval = f"{max(20, 4 * self.step)}s"
        builtins = {
            "__rate_interval": interval,
            "__interval": f"{self.step}s",
            "__range": f"{int(self.end - self.start)}s",
        }
        expr = substitute(expr, {**builtins, **variables})
        response = self.client.get(
            f"{self.prometheus}/api/v1/query_range",
            params={"query": expr, "start": self.start, "end": self.end, "step": self.step},
        )
        response.raise_for_status()
        return response.json()["data"]["result"]  # type: ignore[no-any-return]

    def draw(self, ax: Any, panel: Panel, variables: dict[str, str]) -> bool:
        """Draws one panel; False when none of its queries returned data."""
        kind = panel.json["type"]
        unit = panel.json.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        drawn = False
        for target in panel.json["targets"]:
            result = self.query(target["expr"], variables)
            if kind == "heatmap":
                drawn |= draw_heatmap(ax, result)
                continue
            for series in result:
                values = self.on_grid(series["values"])
                numbers = [v for v in values if not math.isnan(v)]
                if not numbers:
                    continue
                drawn = True
                label = legend(target.get("legendFormat", ""), series["metric"])
                if kind == "stat":
                    ax.plot(self.times, values, alpha=0.4)
                    ax.text(0.5, 0.5, format_value(numbers[-1], unit), transform=ax.transAxes,
                            ha="center", va="center", fontsize=22, weight="bold")  # fmt: skip
                else:  # NaN where the series has no sample: a gap, as Grafana draws it
                    ax.plot(self.times, values, label=label[:60], linewidth=1.2)
        ax.set_title(panel.title, fontsize=10, loc="left")
        if kind == "timeseries" and drawn:
            ax.set_ylabel(UNITS.get(unit, ""), fontsize=8)
            ax.legend(fontsize=6, loc="upper left", ncol=2, framealpha=0.5)
        if not drawn:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="grey")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        return drawn


def draw_heatmap(ax: Any, result: list[dict[str, Any]]) -> bool:
    """Cumulative bucket rates -> requests per bucket over time, bucket bounds on the y axis."""
    import numpy as np

    rows = sorted(
        ((float(s["metric"]["le"]), s["values"]) for s in result if "le" in s["metric"]),
        key=lambda r: r[0],
    )
    if not rows:
        return False
    times = sorted({float(t) for _, values in rows for t, _ in values})
    index = {t: i for i, t in enumerate(times)}
    cumulative = np.zeros((len(rows), len(times)))
    for r, (_, values) in enumerate(rows):
        for t, v in values:
            cumulative[r, index[float(t)]] = 0.0 if math.isnan(float(v)) else float(v)
    counts = np.diff(cumulative, axis=0, prepend=0).clip(min=0)
    ax.pcolormesh(
        [datetime.fromtimestamp(t) for t in times],
        range(len(rows)),
        counts,
        shading="nearest",
        cmap="Oranges",
    )
    ax.set_yticks(range(len(rows)), [f"{le:g}" for le, _ in rows], fontsize=6)
    ax.set_ylabel("≤ seconds", fontsize=8)
    return bool(counts.any())


def format_value(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value:.2%}"
    if unit == "bytes":
        return f"{value / 2**20:.1f} MiB"
    return f"{value:.4g}"


def render(dashboard: dict[str, Any], renderer: Renderer, out: Path) -> tuple[Path, int, int]:
    """Writes out/<uid>.png; returns it, the panels drawn with data, and the panels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variables = {**variable_values(dashboard), **renderer.values}
    chosen = [p for p in panels(dashboard) if not p.source.startswith("cluster:")]
    rows = max(1, math.ceil(len(chosen) / COLUMNS))
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(6 * COLUMNS, 3.4 * rows), squeeze=False)
    with_data = 0
    for ax, panel in zip(axes.flat, chosen, strict=False):
        with_data += renderer.draw(ax, panel, variables)
    for ax in list(axes.flat)[len(chosen) :]:
        ax.axis("off")
    start, end = datetime.fromtimestamp(renderer.start), datetime.fromtimestamp(renderer.end)
    window = f"{start:%Y-%m-%d %H:%M} to {end:%H:%M}"
    fig.suptitle(f"{dashboard['title']} ({window}, {renderer.prometheus})", fontsize=13)
    fig.autofmt_xdate()
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{dashboard['uid']}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path, with_data, len(chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prometheus", default=DEFAULT_PROMETHEUS)
    parser.add_argument(
        "--since", type=seconds, default=seconds("30m"), help="how far back (30m, 2h)"
    )
    parser.add_argument("--dashboard", action="append", help="uid (repeatable); default: all")
    parser.add_argument("--service", default="gateway", help="value of $service (Service detail)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    end = time.time()
    renderer = Renderer(args.prometheus, end - args.since, end, {"service": args.service})
    dashboards = [d for d in load_dashboards() if not args.dashboard or d["uid"] in args.dashboard]
    if not dashboards:
        parser.error(f"no dashboard with uid {args.dashboard}")
    for dashboard in dashboards:
        path, with_data, drawn = render(dashboard, renderer, args.out)
        print(f"{path}: {with_data}/{drawn} panels with data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
