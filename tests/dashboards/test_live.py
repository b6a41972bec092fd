"""The real check: every dashboard panel and recording rule returns data from the local stack.

Starts the local infrastructure and services if they are not running (scripts/local-infra.sh,
scripts/local-services.sh), makes Prometheus load the current rules, sends a short,
bounded burst of API traffic to the gateway, then runs every panel's queries (Grafana variables
substituted) against the real Prometheus and requires data:

  - every query of a local panel returns a series with at least one number (for the Service
    detail dashboard: every panel for every service, every query for at least one service);
  - load-generator panels (locust_*) only when a `loadgen` target is up, else skipped;
  - cluster-only panels (dashboards/cluster_only.yml) are skipped here; test_structure.py
    checks their metric names against the exporters' published names;
  - every recording rule's expression returns data, every alert expression evaluates;
  - an exemplar on a latency histogram names a trace that Jaeger has.

It prints one line per panel saying what returned data.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dashboards import render
from dashboards.queries import (
    REPO,
    RULES_DIR,
    Panel,
    load_dashboards,
    load_rules,
    panels,
    substitute,
    variable_values,
)
from perflab.dev.processes import SERVICES

pytestmark = pytest.mark.e2e

PROMETHEUS = "http://127.0.0.1:19090"
GATEWAY = "http://127.0.0.1:18080"
JAEGER = "http://127.0.0.1:16686"
# Bounds of the traffic burst (all to 127.0.0.1).
PRODUCT_READS = 600
ORDERS = 60
BURST_SECONDS = 45
SPREAD_SECONDS = 25
CONCURRENCY = 8
UP = 'up{job=~"gateway|orders|payments|worker"}'
PER_SERVICE_P50 = "histogram_quantile(0.5, job_le:server_duration_seconds_bucket:rate1m)"


def prom(path: str, **params: Any) -> Any:
    response = httpx.get(f"{PROMETHEUS}{path}", params=params, timeout=30)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{path} {params}: {body}"
    return body["data"]


def instant(query: str) -> list[dict[str, Any]]:
    return prom("/api/v1/query", query=query)["result"]  # type: ignore[no-any-return]


def ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(what: str, check: Any, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def ensure_stack() -> bool:
    """Starts the local infrastructure (left running, like the `infra` fixture does) and the
    services when they do not answer; True when this started the services."""
    # Idempotent and quick when everything runs; starts only what does not.
    subprocess.run(["scripts/local-infra.sh", "up"], cwd=REPO, check=True, timeout=300)
    started = not ok(f"{GATEWAY}/readyz")
    if started:
        subprocess.run(["scripts/local-services.sh", "up"], cwd=REPO, check=True, timeout=300)
    wait_for("the gateway to be ready", lambda: ok(f"{GATEWAY}/readyz"), 60)
    return started


def load_current_rules() -> None:
    """Makes Prometheus re-read its rule files (it reads the glob at start and on reload)."""
    ours = {g["name"] for g in _rule_groups_in_files()}
    httpx.post(f"{PROMETHEUS}/-/reload", timeout=30).raise_for_status()

    def loaded() -> bool:
        groups = prom("/api/v1/rules")["groups"]
        return ours <= {g["name"] for g in groups if g["file"].startswith(str(RULES_DIR))}

    wait_for(
        f"Prometheus to load {RULES_DIR}/*.yml (is it this checkout's local stack?)", loaded, 30
    )


def _rule_groups_in_files() -> Iterator[dict[str, Any]]:
    for path in RULES_DIR.glob("*.yml"):
        yield from yaml.safe_load(path.read_text())["groups"]


async def burst() -> dict[int, int]:
    """A bounded burst of API traffic, spread over SPREAD_SECONDS so that every counter moves
    across several scrapes (a counter a fresh process creates and bumps between two scrapes
    shows no rate): product reads (a hot set read twice, so the cache misses and hits), cold
    products read by CONCURRENCY clients at once (stampede protection), unknown products
    (404), and orders that go through the whole payment pipeline."""
    rng = random.Random(5)
    order = {"customer_id": "c1", "items": [{"product_id": 5, "quantity": 1}]}
    hot = [rng.randint(1, 10_000) for _ in range(PRODUCT_READS // 3)]
    reads = [[("GET", f"/api/products/{p}", None)] for p in hot + hot]
    cold_ids = [rng.randint(1, 10_000) for _ in range(PRODUCT_READS // 24)]
    cold = [[("GET", f"/api/products/{p}", None)] * CONCURRENCY for p in cold_ids]
    batches: list[list[tuple[str, str, Any]]] = [
        *(
            list(itertools.chain(*reads[i : i + CONCURRENCY]))
            for i in range(0, len(reads), CONCURRENCY)
        ),
        *cold,
        *([("GET", "/api/products/99999999", None)] for _ in range(10)),
        *([("POST", "/api/orders", order)] for _ in range(ORDERS)),
    ]
    rng.shuffle(batches)
    statuses: dict[int, int] = {}
    started = time.monotonic()

    async def send(client: httpx.AsyncClient, method: str, path: str, body: Any) -> None:
        response = await client.request(method, path, json=body)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    headers = {"X-Client-Id": "dashboards-live-test"}
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=10, headers=headers) as client:
        for i, batch in enumerate(batches):
            await asyncio.sleep(
                max(0.0, started + i * SPREAD_SECONDS / len(batches) - time.monotonic())
            )
            if time.monotonic() - started > BURST_SECONDS:
                break
            await asyncio.gather(*(send(client, *request) for request in batch))
    return statuses


@dataclass
class Outcome:
    series: int = 0  # series returned
    numbers: int = 0  # series with at least one non-NaN sample
    jobs: frozenset[str] = frozenset()  # `job` labels of those

    @property
    def has_data(self) -> bool:
        return self.numbers > 0


def run(expr: str) -> Outcome:
    """Runs `expr` as Grafana would for the last 90 s (step 15 s)."""
    now = time.time()
    data = prom("/api/v1/query_range", query=expr, start=now - 90, end=now, step=15)
    with_numbers = [
        s for s in data["result"] if any(not math.isnan(float(v)) for _, v in s["values"])
    ]
    jobs = frozenset(s["metric"]["job"] for s in with_numbers if "job" in s["metric"])
    return Outcome(len(data["result"]), len(with_numbers), jobs)


@pytest.fixture(scope="module")
def live_stack() -> Iterator[dict[str, Any]]:
    started_services = ensure_stack()
    try:
        yield prepare()
    finally:
        if started_services:  # leave the machine as we found it: the services use CPU
            subprocess.run(["scripts/local-services.sh", "down"], cwd=REPO, timeout=120)


def prepare() -> dict[str, Any]:
    """Current rules loaded, all services scraped, a burst of traffic seen by every rule."""
    load_current_rules()
    wait_for("all four services to be scraped", lambda: len(instant(f"{UP} == 1")) == 4, 60)
    statuses = asyncio.run(burst())
    assert statuses.get(200, 0) > 0 and statuses.get(202, 0) > 0, statuses
    # Scrapes every 5 s, rules every 5 s (SLO groups every 30 s): wait until every recorded
    # series exists, which also means the services were scraped after the burst.
    # One selector per rule, labels included: several SLOs record the same name, and the
    # groups are evaluated at different moments.
    records = sorted(
        {
            rule["record"]
            + "{"
            + ", ".join(f'{k}="{v}"' for k, v in sorted(rule.get("labels", {}).items()))
            + "}"
            for group in _rule_groups_in_files()
            for rule in group["rules"]
            if "record" in rule
        }
    )
    wait_for(
        "every recording rule to produce a series",
        lambda: all(instant(selector) for selector in records),
        90,
        every=3,
    )
    # The worker and payments see the orders a moment after the gateway: wait until the
    # overview's per-service latency has all four.
    wait_for(
        "a latency figure for each of the four services",
        lambda: len(instant(f"{PER_SERVICE_P50} >= 0")) == 4,
        60,
        every=3,
    )
    loadgen = bool(instant('up{job="loadgen"} == 1'))
    return {"statuses": statuses, "loadgen": loadgen}


def test_service_variable_lists_the_four_services(live_stack: dict[str, Any]) -> None:
    """label_values(selector, label), answered the way Grafana asks Prometheus for it."""
    (dashboard,) = [d for d in load_dashboards() if d["uid"] == "perflab-service"]
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "service"]
    match = re.fullmatch(r"label_values\((.*), *(\w+)\)", variable["definition"])
    assert match, variable["definition"]
    selector, label = match.groups()
    assert set(prom(f"/api/v1/label/{label}/values", **{"match[]": selector})) == set(SERVICES)


def _service_values(dashboard: dict[str, Any]) -> list[dict[str, str]]:
    defaults = variable_values(dashboard)
    if any(v["name"] == "service" for v in dashboard["templating"]["list"]):
        return [{**defaults, "service": s} for s in SERVICES]
    return [defaults]


def test_every_panel_returns_data(
    live_stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    lines, failures = [], []
    counts = {"data": 0, "loadgen": 0, "cluster": 0}
    for dashboard in load_dashboards():
        choices = _service_values(dashboard)
        for panel in panels(dashboard):
            source = panel.source
            if source.startswith("cluster:"):
                counts["cluster"] += 1
                lines.append(f"  cluster-only  {panel} ({source.removeprefix('cluster:')})")
                continue
            if source == "loadgen" and not live_stack["loadgen"]:
                counts["loadgen"] += 1
                lines.append(f"  skipped       {panel} (load generator: no `loadgen` target is up)")
                continue
            verdict, problems = _check_panel(panel, choices, strict_targets=source == "local")
            failures += problems
            counts["data"] += not problems
            lines.append(f"  {'DATA' if not problems else 'MISSING DATA':<13} {panel} {verdict}")
    with capsys.disabled():
        print(f"\ndashboard panels against {PROMETHEUS} (traffic sent: {live_stack['statuses']}):")
        print("\n".join(lines))
        print(
            f"  => {counts['data']} panels with data, {counts['loadgen']} load-generator panels "
            f"skipped, {counts['cluster']} cluster-only"
        )
    assert not failures, "\n".join(failures)


def _check_panel(
    panel: Panel, choices: list[dict[str, str]], *, strict_targets: bool
) -> tuple[str, list[str]]:
    """Runs the panel's queries for every variable choice. Local panels need every query to
    return data for some choice, and the panel data for every choice; load-generator panels
    need data for some query (closed- and open-loop scenarios fill different ones)."""
    targets = panel.json["targets"]
    results = {
        (t["refId"], i): run(substitute(t["expr"], values))
        for t, (i, values) in itertools.product(targets, enumerate(choices))
    }
    problems = []
    if strict_targets:
        for t in targets:
            if not any(results[(t["refId"], i)].has_data for i in range(len(choices))):
                problems.append(f"{panel} query {t['refId']} returned no data: {t['expr']}")
            elif t["legendFormat"].startswith("{{job}}") and results[
                (t["refId"], 0)
            ].jobs != _jobs_of(t["expr"]):
                jobs = sorted(results[(t["refId"], 0)].jobs)
                problems.append(
                    f"{panel} query {t['refId']} has data for {jobs}, "
                    f"not {sorted(_jobs_of(t['expr']))}"
                )
    for i, values in enumerate(choices):
        if not any(results[(t["refId"], i)].has_data for t in targets):
            problems.append(f"{panel} shows nothing for {values or 'its defaults'}")
    series = sum(r.numbers for r in results.values())
    if len(choices) > 1:
        shown = [
            v["service"]
            for i, v in enumerate(choices)
            if any(results[(t["refId"], i)].has_data for t in targets)
        ]
        return f"({series} series; for {', '.join(shown)})", problems
    return f"({series} series)", problems


def _jobs_of(expr: str) -> set[str]:
    """The services a query selects (job="x" / job=~"x|y"), all four when it names none."""
    named = {j for m in re.findall(r'job=~?"([^"]+)"', expr) for j in m.split("|")}
    return named & set(SERVICES) or set(SERVICES)


def test_every_recording_rule_expression_returns_data(live_stack: dict[str, Any]) -> None:
    empty = []
    for rule in load_rules():
        outcome = run(rule.expr)  # an alert expression only has to evaluate without error
        if rule.kind == "record" and not outcome.series:
            empty.append(f"{rule.file} {rule.name}: {rule.expr}")
    assert not empty, "recording rules with no data:\n" + "\n".join(empty)


def test_exemplars_open_a_trace_in_jaeger(live_stack: dict[str, Any]) -> None:
    """The exemplar of a latency bucket carries a trace id that Jaeger knows: what the panels'
    exemplar link opens."""
    now = time.time()
    data = prom(
        "/api/v1/query_exemplars",
        query='rpc_server_duration_seconds_bucket{job="orders"}',
        start=now - 300,
        end=now,
    )
    trace_ids = [
        e["labels"]["trace_id"] for s in data for e in s["exemplars"] if "trace_id" in e["labels"]
    ]
    assert trace_ids, (
        "no exemplar with a trace_id on rpc_server_duration_seconds_bucket{job=orders}"
    )
    # The newest few: a batch span processor whose queue is full under load drops spans (the
    # SDK logs "Queue is full"), and the exemplar of such a trace then opens nothing; that
    # says nothing about the exemplars' wiring, which is what this checks.
    newest = list(dict.fromkeys(reversed(trace_ids)))[:5]

    def found() -> bool:
        for trace_id in newest:
            response = httpx.get(f"{JAEGER}/api/traces/{trace_id}", timeout=10)
            if response.status_code == 200 and response.json().get("data"):
                return True
        return False

    wait_for(f"Jaeger to have one of the traces {newest}", found, 60, every=2)


def test_render_draws_the_run_to_png(live_stack: dict[str, Any], tmp_path: Path) -> None:
    """`python -m dashboards.render` draws every local panel of the overview with data."""
    end = time.time()
    renderer = render.Renderer(PROMETHEUS, end - 300, end, {"service": "orders"})
    (overview,) = [d for d in load_dashboards() if d["uid"] == "perflab-overview"]
    path, with_data, drawn = render.render(overview, renderer, tmp_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    local = [p for p in panels(overview) if p.source == "local"]
    assert with_data >= len(local), f"{with_data} of {drawn} panels drawn with data"
