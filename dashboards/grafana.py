"""Small constructors for Grafana dashboard JSON (schemaVersion 39), so six dashboards share one
shape: every panel and target on the `datasource` variable, refIds and panel ids assigned in
order, panels laid out left to right on Grafana's 24-column grid, exemplar links to Jaeger.

Only what the lab's dashboards use is here; see build.py for the dashboards themselves.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
GRID_WIDTH = 24

# Every panel, target, query variable and annotation points at the `datasource` variable, so
# the same JSON works against the local Prometheus and the cluster's.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Exemplars carry the trace id as label `trace_id` (perflab.common.metrics.observe). In the
# exemplar frame Grafana shows that label as a field of the same name; this link opens it in
# the Jaeger UI given by the `jaeger_url` variable. (The cluster's Prometheus datasource also
# links exemplars to the Jaeger datasource: deploy/monitoring/kube-prometheus-stack.values.yaml.)
EXEMPLAR_TRACE_LINK = {
    "matcher": {"id": "byName", "options": "trace_id"},
    "properties": [
        {
            "id": "links",
            "value": [
                {
                    "title": "Open trace ${__value.raw} in Jaeger",
                    "url": "${jaeger_url}/trace/${__value.raw}",
                    "targetBlank": True,
                }
            ],
        }
    ],
}

Json = dict[str, Any]


# A selector of raw histogram buckets (recorded series have no exemplars, so `job_le:..._bucket:`
# does not count).
RAW_BUCKETS = re.compile(r"[a-z0-9]_bucket[{\[]")


def target(expr: str, legend: str = "", *, fmt: str = "time_series") -> Json:
    """One PromQL query of a panel (its refId is given by the panel). Queries of raw histogram
    buckets ask for exemplars, the trace ids Grafana shows as dots linked to Jaeger."""
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "exemplar": bool(RAW_BUCKETS.search(expr)),
        "format": fmt,
        "legendFormat": legend or "__auto",
        "range": True,
    }


def _panel(kind: str, title: str, description: str, targets: list[Json], w: int, h: int) -> Json:
    if not targets:
        raise ValueError(f"panel {title!r} has no query")
    refs = iter(string.ascii_uppercase)
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
        "targets": [{**t, "refId": next(refs)} for t in targets],
    }


def _thresholds(steps: list[tuple[str, float | None]] | None) -> Json:
    steps = steps or [("green", None)]
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def _overrides(targets: list[Json]) -> list[Json]:
    return [EXEMPLAR_TRACE_LINK] if any(t["exemplar"] for t in targets) else []


def timeseries(
    title: str,
    description: str,
    targets: list[Json],
    *,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    stack: bool = False,
    bars: bool = False,
    minimum: float | None = 0,
    thresholds: list[tuple[str, float | None]] | None = None,
    legend_calcs: tuple[str, ...] = ("mean", "max", "lastNotNull"),
) -> Json:
    panel = _panel("timeseries", title, description, targets, w, h)
    defaults: Json = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "thresholds": _thresholds(thresholds),
        "custom": {
            "drawStyle": "bars" if bars else "line",
            "lineWidth": 1,
            "fillOpacity": 80 if bars else (25 if stack else 10),
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "dashed" if thresholds else "off"},
        },
    }
    if minimum is not None:
        defaults["min"] = minimum
    panel["fieldConfig"] = {"defaults": defaults, "overrides": _overrides(targets)}
    panel["options"] = {
        "legend": {
            "displayMode": "table" if legend_calcs else "list",
            "placement": "bottom",
            "showLegend": True,
            "calcs": list(legend_calcs),
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel


def heatmap(title: str, description: str, targets: list[Json], *, w: int = 12, h: int = 8) -> Json:
    """A latency heatmap of pre-bucketed histogram rates (`sum by (le) (rate(..._bucket))`)."""
    panel = _panel("heatmap", title, description, targets, w, h)
    panel["fieldConfig"] = {"defaults": {}, "overrides": _overrides(targets)}
    panel["options"] = {
        "calculate": False,
        "cellGap": 1,
        "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5},
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": False},
        "yAxis": {"axisPlacement": "left", "unit": "s", "reverse": False},
    }
    return panel


def stat(
    title: str,
    description: str,
    targets: list[Json],
    *,
    unit: str = "short",
    w: int = 6,
    h: int = 4,
    decimals: int | None = None,
    thresholds: list[tuple[str, float | None]] | None = None,
) -> Json:
    panel = _panel("stat", title, description, targets, w, h)
    defaults: Json = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": _thresholds(thresholds),
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    panel["fieldConfig"] = {"defaults": defaults, "overrides": []}
    panel["options"] = {
        "colorMode": "background" if thresholds else "value",
        "graphMode": "area",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }
    return panel


@dataclass
class Row:
    """A titled band of panels. Collapsed rows hold their panels inside (Grafana's format)."""

    title: str
    panels: list[Json]
    collapsed: bool = False
    description: str = ""


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    rows: list[Row]
    variables: list[Json] = field(default_factory=list)
    annotations: list[Json] = field(default_factory=list)
    tags: tuple[str, ...] = ("perflab",)
    links: list[Json] = field(default_factory=list)
    time_from: str = "now-30m"

    def to_json(self) -> Json:
        panels: list[Json] = []
        next_id = iter(range(1, 10_000))
        y = 0
        for row in self.rows:
            header: Json = {
                "type": "row",
                "id": next(next_id),
                "title": row.title,
                "collapsed": row.collapsed,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
            if row.description:
                header["description"] = row.description
            panels.append(header)
            y += 1
            placed, y = _flow(row.panels, y, next_id)
            if row.collapsed:
                header["panels"] = placed
            else:
                panels.extend(placed)
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "refresh": "10s",
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "links": self.links,
            "annotations": {"list": [BUILTIN_ANNOTATION, *self.annotations]},
            "templating": {"list": [DATASOURCE_VARIABLE, *self.variables]},
            "panels": panels,
        }


def _flow(panels: list[Json], y: int, ids: Any) -> tuple[list[Json], int]:
    """Places panels left to right, wrapping at the grid width; returns them and the next y."""
    placed: list[Json] = []
    x, line_height = 0, 0
    for panel in panels:
        w, h = panel["gridPos"]["w"], panel["gridPos"]["h"]
        if x + w > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        placed.append({"id": next(ids), **panel, "gridPos": {"h": h, "w": w, "x": x, "y": y}})
        x += w
        line_height = max(line_height, h)
    return placed, y + line_height


BUILTIN_ANNOTATION = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}

DATASOURCE_VARIABLE = {
    "name": "datasource",
    "label": "Prometheus",
    "type": "datasource",
    "query": "prometheus",
    "current": {},
    "hide": 0,
    "includeAll": False,
    "multi": False,
    "options": [],
    "refresh": 1,
    "regex": "",
    "skipUrlSync": False,
}


def query_variable(name: str, label: str, query: str) -> Json:
    """A variable filled from Prometheus (`label_values(...)`), single value, no "All"."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {
            "qryType": 1,
            "query": query,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
    }


def textbox_variable(name: str, label: str, default: str) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "textbox",
        "query": default,
        "current": {"selected": False, "text": default, "value": default},
        "options": [{"selected": True, "text": default, "value": default}],
        "hide": 0,
        "skipUrlSync": False,
    }


def annotation(
    name: str, expr: str, *, title: str, text: str, color: str, tag_keys: str = ""
) -> Json:
    """Marks or regions from a PromQL query: consecutive points merge into one region."""
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": color,
        "expr": expr,
        "step": "15s",
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": tag_keys,
        "useValueForTime": False,
    }
