"""Reads what build.py wrote: the dashboards' panels and queries, the rules, and where each
metric comes from. Used by the tests (tests/dashboards/) and by render.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PACKAGE_DIR = Path(__file__).resolve().parent
REPO = PACKAGE_DIR.parent
# The one copy of the dashboards' JSON and the Prometheus rules is in the chart (Helm reads no
# file outside it): build.py writes there, the local Prometheus and the tests read from there.
CHART_DIR = REPO / "deploy" / "helm" / "perflab"
DASHBOARDS_DIR = CHART_DIR / "dashboards"
RULES_DIR = CHART_DIR / "rules"
CLUSTER_ONLY_FILE = PACKAGE_DIR / "cluster_only.yml"

# Metrics of the load generator (loadtests/exporter.py, job `loadgen`): data only while a load
# test runs.
LOADGEN_PREFIX = "locust_"

# Values for Grafana's built-in variables when a query runs outside Grafana. $__rate_interval
# is at least four scrape intervals (5 s locally).
GRAFANA_BUILTINS = {
    "__rate_interval": "20s",
    "__interval": "15s",
    "__range": "5m",
    "__range_s": "300",
}

_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan", "atan2"}  # fmt: skip


def substitute(expr: str, values: dict[str, str] | None = None) -> str:
    """Replaces Grafana variables ($x, ${x}, ${x:fmt}, [[x]]) as Grafana would before querying.

    Raises KeyError for a variable that neither `values` nor Grafana's built-ins define.
    """
    known = {**GRAFANA_BUILTINS, **(values or {})}

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return known[name]

    return _VARIABLE.sub(replace, expr)


def variables_in(expr: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(expr)}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a lexical scan, enough for our own queries:
    strings, label matchers, ranges and grouping clauses are removed, then every identifier that
    is not a function call or keyword is a metric)."""
    text = _STRING.sub('""', substitute(expr, {v: "x" for v in variables_in(expr)}))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, start = match.group(), match.start()
        if start and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue  # the exponent or unit of a number: 1e3, 5m
        if word in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names


@cache
def cluster_only_metrics() -> dict[str, str]:
    """Metric name -> the exporter that publishes it, from cluster_only.yml."""
    spec = yaml.safe_load(CLUSTER_ONLY_FILE.read_text())
    return {
        metric: exporter
        for exporter, info in spec["exporters"].items()
        for metric in info["metrics"]
    }


def source_of(exprs: list[str]) -> str:
    """'local', 'loadgen' or 'cluster:<exporter>' for the queries of one panel or rule."""
    names = set().union(*(metric_names(e) for e in exprs)) if exprs else set()
    exporters = sorted({cluster_only_metrics()[n] for n in names if n in cluster_only_metrics()})
    if exporters:
        return "cluster:" + "+".join(exporters)
    if any(n.startswith(LOADGEN_PREFIX) for n in names):
        return "loadgen"
    return "local"


@dataclass(frozen=True)
class Panel:
    dashboard: str  # uid
    id: int
    title: str
    json: dict[str, Any]

    @property
    def exprs(self) -> list[str]:
        return [t["expr"] for t in self.json.get("targets", [])]

    @property
    def source(self) -> str:
        return source_of(self.exprs)

    def __str__(self) -> str:
        return f"{self.dashboard}#{self.id} {self.title!r}"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in dashboard_files()]


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panels(dashboard: dict[str, Any]) -> Iterator[Panel]:
    """The panels that query (rows excluded)."""
    for panel in all_panels(dashboard):
        if panel["type"] != "row":
            yield Panel(dashboard["uid"], panel["id"], panel["title"], panel)


def variable_values(dashboard: dict[str, Any]) -> dict[str, str]:
    """Non-datasource variables and their defaults (query variables have none: the caller
    supplies values)."""
    values = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] in ("textbox", "constant", "custom"):
            values[variable["name"]] = variable["query"]
    return values


@dataclass(frozen=True)
class Rule:
    file: str
    group: str
    name: str  # record or alert name
    kind: str  # "record" or "alert"
    expr: str


def load_rules() -> list[Rule]:
    rules = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                kind = "record" if "record" in rule else "alert"
                rules.append(Rule(path.name, group["name"], rule[kind], kind, rule["expr"]))
    return rules
