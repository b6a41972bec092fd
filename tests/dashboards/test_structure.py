"""Structural checks of the Grafana dashboards (deploy/helm/perflab/dashboards/*.json) and their
queries, offline.

What data the queries return is checked against the real stack in test_live.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from dashboards import build
from dashboards.grafana import DATASOURCE, GRID_WIDTH, RAW_BUCKETS
from dashboards.queries import (
    LOADGEN_PREFIX,
    REPO,
    all_panels,
    cluster_only_metrics,
    dashboard_files,
    load_dashboards,
    load_rules,
    metric_names,
    panels,
    source_of,
    substitute,
    variables_in,
)

EXPECTED_UIDS = {
    "perflab-overview",
    "perflab-service",
    "perflab-async",
    "perflab-autoscaling",
    "perflab-datastores",
    "perflab-slo",
}
# Metrics the services export through libraries rather than their own code, and Prometheus'
# own `up`; every other local metric must be named in services/*/src.
LIBRARY_METRICS = {
    "up": "Prometheus, per scrape target",
    "process_cpu_seconds_total": "prometheus_client's process collector",
    "process_resident_memory_bytes": "prometheus_client's process collector",
    "http_requests_total": "prometheus-fastapi-instrumentator (gateway)",
    "http_request_duration_seconds": "prometheus-fastapi-instrumentator (gateway)",
    "http_request_duration_highr_seconds": "prometheus-fastapi-instrumentator (gateway)",
}
SERVICE_VALUES = {"service": "gateway"}

DASHBOARDS = load_dashboards()
PANELS = [p for d in DASHBOARDS for p in panels(d)]


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every query: panel targets, annotations, query variables."""
    found = []
    for dashboard in DASHBOARDS:
        for panel in panels(dashboard):
            for t in panel.json["targets"]:
                found.append((f"{panel} {t['refId']}", t["expr"]))
        for a in dashboard["annotations"]["list"]:
            if "expr" in a:
                found.append((f"{dashboard['uid']} annotation {a['name']!r}", a["expr"]))
        for v in dashboard["templating"]["list"]:
            if v["type"] == "query":
                inner = re.fullmatch(r"label_values\((.*), *\w+\)", v["definition"])
                assert inner, f"{dashboard['uid']} variable {v['name']}: not label_values(...)"
                found.append((f"{dashboard['uid']} variable {v['name']}", inner.group(1)))
    return found


def test_generated_files_match_the_builder() -> None:
    """The one drift check: the chart's dashboards and rules/slo.yml are what build.py writes,
    and the chart holds no dashboard the builder no longer makes."""
    files = build.render()
    stale = [
        str(path.relative_to(REPO))
        for path, content in files.items()
        if not path.exists() or path.read_text() != content
    ]
    stale += [str(path.relative_to(REPO)) for path in dashboard_files() if path not in files]
    assert not stale, f"run `make dashboards`: stale {stale}"


def test_six_dashboards_with_stable_unique_uids() -> None:
    uids = [d["uid"] for d in DASHBOARDS]
    assert sorted(uids) == sorted(EXPECTED_UIDS)
    titles = [d["title"] for d in DASHBOARDS]
    assert len(set(titles)) == len(titles)
    for d in DASHBOARDS:
        assert d["schemaVersion"] >= 36
        assert "id" not in d, "a dashboard id is per Grafana instance; only the uid is stable"


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d["uid"])
def test_panel_ids_are_unique_and_the_grid_holds(dashboard: dict) -> None:
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {dashboard['uid']}"
    for p in all_panels(dashboard):
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= GRID_WIDTH, p["title"]
        assert pos["h"] > 0 and pos["y"] >= 0, p["title"]


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d["uid"])
def test_everything_queries_through_the_datasource_variable(dashboard: dict) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard):
        assert panel.json["datasource"] == DATASOURCE, str(panel)
        assert panel.json["targets"], f"{panel} has no query"
        for t in panel.json["targets"]:
            assert t["datasource"] == DATASOURCE, f"{panel} {t['refId']}"
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == DATASOURCE, v["name"]
    for a in dashboard["annotations"]["list"]:
        if not a.get("builtIn"):
            assert a["datasource"] == DATASOURCE, a["name"]


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d["uid"])
def test_variables_used_are_defined(dashboard: dict) -> None:
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    text = " ".join(t["expr"] for p in panels(dashboard) for t in p.json["targets"])
    links = str([p.json.get("fieldConfig") for p in panels(dashboard)])
    used = {v for v in variables_in(text + links) if not v.startswith("__")}
    assert used <= defined, f"undefined variables {used - defined}"


def test_rates_use_the_rate_interval() -> None:
    """Ranges in panels follow Grafana's $__rate_interval (or the time range for totals)."""
    for panel in PANELS:
        for t in panel.json["targets"]:
            without_strings = re.sub(r'"(?:\\.|[^"\\])*"', '""', t["expr"])
            for window in re.findall(r"\[([^\]]+)\]", without_strings):
                assert window in ("$__rate_interval", "$__range"), f"{panel}: [{window}]"


def test_service_detail_follows_the_service_variable() -> None:
    (service,) = [d for d in DASHBOARDS if d["uid"] == "perflab-service"]
    for panel in panels(service):
        for t in panel.json["targets"]:
            assert '="$service"' in t["expr"], f"{panel} {t['refId']} ignores $service"


def test_every_expression_parses_as_promql(tmp_path: Path) -> None:
    """Every query, after Grafana's variables are substituted, parses: promtool checks each as
    a recording rule."""
    exprs = dashboard_exprs()
    rules = [
        {"record": f"parse_check:q{i}", "expr": substitute(expr, SERVICE_VALUES)}
        for i, (_, expr) in enumerate(exprs)
    ]
    path = tmp_path / "parse_check.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "parse-check", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", "--lint=none", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    failed = {
        int(i)
        for i in re.findall(r'"parse_check:q(\d+)": could not parse', result.stdout + result.stderr)
    }
    assert not failed and result.returncode == 0, "\n".join(
        [f"{exprs[i][0]}: {exprs[i][1]}" for i in sorted(failed)] or [result.stdout + result.stderr]
    )


def test_latency_queries_ask_for_exemplars_linked_to_jaeger() -> None:
    heatmaps = [p for p in PANELS if p.json["type"] == "heatmap"]
    assert heatmaps
    for panel in PANELS:
        targets = panel.json["targets"]
        for t in targets:
            assert t["exemplar"] == bool(RAW_BUCKETS.search(t["expr"])), f"{panel} {t['refId']}"
        if any(t["exemplar"] for t in targets):
            overrides = panel.json["fieldConfig"]["overrides"]
            links = [
                link
                for o in overrides
                if o["matcher"] == {"id": "byName", "options": "trace_id"}
                for prop in o["properties"]
                for link in prop["value"]
            ]
            assert any(link["url"] == "${jaeger_url}/trace/${__value.raw}" for link in links), str(
                panel
            )
    for panel in heatmaps:
        assert all(t["exemplar"] and t["format"] == "heatmap" for t in panel.json["targets"])


def test_dashboards_are_annotated_with_load_tests() -> None:
    for d in DASHBOARDS:
        exprs = [a.get("expr", "") for a in d["annotations"]["list"]]
        assert any("locust_test_running" in e for e in exprs), d["uid"]


def test_panels_do_not_mix_cluster_only_and_local_metrics() -> None:
    for panel in PANELS:
        sources = {source_of([e]).split(":")[0] for e in panel.exprs}
        assert len(sources) == 1, f"{panel} mixes {sources}"


def test_cluster_only_panels_say_so() -> None:
    cluster = [p for p in PANELS if p.source.startswith("cluster:")]
    assert {p.dashboard for p in cluster} >= {
        "perflab-autoscaling",
        "perflab-service",
        "perflab-datastores",
    }
    for panel in cluster:
        assert panel.json["description"].startswith("Cluster only ("), str(panel)
    for panel in PANELS:
        if panel.source == "loadgen":
            assert panel.json["description"].startswith("Load generator"), str(panel)


def _family(name: str) -> set[str]:
    """The names a metric's family may be declared under (histogram series, counter suffix)."""
    return {name, re.sub(r"_(bucket|count|sum|total)$", "", name)}


def _named_in(name: str, text: str) -> bool:
    return any(f'"{c}"' in text for c in _family(name))


def test_every_metric_has_a_known_source() -> None:
    """Each metric a dashboard or rule uses is recorded by our rules, named in the services'
    code, provided by a library they use, published by the load generator, or listed in
    cluster_only.yml as a cluster exporter's."""
    services = "\n".join(p.read_text() for p in REPO.glob("services/*/src/**/*.py"))
    loadgen = (REPO / "loadtests" / "exporter.py").read_text()
    recorded = {r.name for r in load_rules() if r.kind == "record"}
    used = {(where, m) for where, e in dashboard_exprs() for m in metric_names(e)}
    used |= {(f"rule {r.name}", m) for r in load_rules() for m in metric_names(r.expr)}
    unknown = []
    for where, metric in sorted(used):
        if ":" in metric:
            ok = metric in recorded
        elif metric in cluster_only_metrics() or _family(metric) & set(LIBRARY_METRICS):
            ok = True
        elif metric.startswith(LOADGEN_PREFIX):
            ok = _named_in(metric, loadgen)
        else:
            ok = _named_in(metric, services)
        if not ok:
            unknown.append(f"{where}: {metric}")
    assert not unknown, "metrics with no known source:\n" + "\n".join(unknown)


def test_metric_name_scan() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, rpc_method) (rate(rpc_client_duration_seconds_bucket"
        '{job="$service", rpc_method!="x"}[$__rate_interval]))) / on (job) group_left () '
        "slo:objective:ratio offset 5m > 1e3 or vector(0) "
        'unless label_replace(up, "a", "$1", "b", "(.*)")'
    )
    assert metric_names(expr) == {"rpc_client_duration_seconds_bucket", "slo:objective:ratio", "up"}
