"""What every dashboard of the lab shares (lab_dashboard): the load-test and fault annotations,
the Jaeger and service variables, the links between dashboards, and the prefix that says where
a cluster-only or load-generator panel's data comes from."""

from __future__ import annotations

from collections.abc import Sequence

from dashboards.grafana import (
    Dashboard,
    Json,
    Row,
    annotation,
    query_variable,
    textbox_variable,
)
from dashboards.promql import JOBS
from dashboards.queries import source_of

RUN_ANNOTATIONS = [
    annotation(
        "Load test running",
        "max by (scenario) (locust_test_running) > 0",
        title="Load test {{scenario}}",
        text="running",
        color="rgba(255, 152, 48, 0.25)",
        tag_keys="scenario",
    ),
    annotation(
        "Load test start/stop",
        "max by (scenario) (changes(locust_test_running[30s])) > 0",
        title="Load test {{scenario}} started or stopped",
        text="locust_test_running changed",
        color="rgba(255, 96, 96, 1)",
        tag_keys="scenario",
    ),
    annotation(
        "Faults injected",
        f"max by (fault) (perflab_fault_value{{{JOBS}}}) > 0",
        title="Fault {{fault}}",
        text="switched on (admin API)",
        color="rgba(180, 90, 255, 0.25)",
        tag_keys="fault",
    ),
]
JAEGER_VARIABLE = textbox_variable("jaeger_url", "Jaeger UI", "http://localhost:16686")
SERVICE_VARIABLE = query_variable("service", "Service", f"label_values(up{{{JOBS}}}, job)")
LINKS = [
    {
        "title": "perflab dashboards",
        "type": "dashboards",
        "tags": ["perflab"],
        "asDropdown": True,
        "includeVars": False,
        "keepTime": True,
        "targetBlank": False,
        "icon": "external link",
        "tooltip": "",
        "url": "",
    }
]


def describe(panel: Json) -> Json:
    """Prefixes cluster-only and load-generator panels' descriptions with where data comes from."""
    source = source_of([t["expr"] for t in panel["targets"]])
    if source.startswith("cluster:"):
        exporters = source.removeprefix("cluster:").replace("+", " and ")
        prefix = f"Cluster only ({exporters}; see dashboards/cluster_only.yml). "
    elif source == "loadgen":
        prefix = "Load generator (job loadgen): data only while a load test runs. "
    else:
        return panel
    return {**panel, "description": prefix + panel["description"]}


def rows(*items: Row) -> list[Row]:
    return [
        Row(r.title, [describe(p) for p in r.panels], r.collapsed, r.description) for r in items
    ]


def lab_dashboard(
    uid: str,
    title: str,
    description: str,
    sections: Sequence[Row],
    variables: Sequence[Json] = (),
    time_from: str = "now-30m",
) -> Dashboard:
    """A dashboard of the lab: its rows' panels say where their data comes from, load tests and
    faults are annotated, and it links to the other dashboards."""
    return Dashboard(
        uid=uid,
        title=title,
        description=description,
        rows=rows(*sections),
        variables=list(variables),
        annotations=RUN_ANNOTATIONS,
        links=LINKS,
        time_from=time_from,
    )
