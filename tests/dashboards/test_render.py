"""dashboards/render.py offline: legends, durations, the time grid, heatmap buckets, a PNG."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dashboards import render


def test_legend_follows_grafana_legend_format() -> None:
    labels = {"__name__": "x", "job": "orders", "rpc_method": "GetProduct"}
    assert render.legend("{{job}} {{rpc_method}}", labels) == "orders GetProduct"
    assert render.legend("{{ job }} p99", labels) == "orders p99"
    assert render.legend("{{missing}}{{job}}", labels) == "orders"
    assert render.legend("__auto", labels) == "job=orders, rpc_method=GetProduct"


def test_durations() -> None:
    assert render.seconds("30m") == 1800
    assert render.seconds("2h") == 7200
    with pytest.raises(Exception, match="duration"):
        render.seconds("soon")


def test_samples_land_on_the_query_grid_with_gaps() -> None:
    renderer = render.Renderer("http://127.0.0.1:1", start=1000, end=1100, values={})
    assert renderer.step == 5 and len(renderer.grid) == 21
    values = renderer.on_grid([[1000, "1"], [1010, "3"], [1100, "NaN"]])
    assert values[0] == 1 and math.isnan(values[1]) and values[2] == 3 and math.isnan(values[-1])


def test_heatmap_turns_cumulative_buckets_into_counts(tmp_path: Path) -> None:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = [
        {"metric": {"le": "+Inf"}, "values": [[1000, "10"], [1005, "12"]]},
        {"metric": {"le": "0.1"}, "values": [[1000, "4"], [1005, "4"]]},
        {"metric": {"le": "0.5"}, "values": [[1000, "9"], [1005, "12"]]},
    ]
    fig, ax = plt.subplots()
    assert render.draw_heatmap(ax, result)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.1", "0.5", "inf"]
    (mesh,) = ax.collections
    assert np.asarray(mesh.get_array()).reshape(3, 2).tolist() == [[4, 4], [5, 8], [1, 0]]
    fig.savefig(tmp_path / "heatmap.png")
    plt.close(fig)
    assert (tmp_path / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not render.draw_heatmap(ax, [])
