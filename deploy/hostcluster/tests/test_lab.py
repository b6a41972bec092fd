"""The lab on a real Kubernetes: `make up PROVIDER=host` on this machine, then what a user
does with it, each step proven from outside (HTTP through the NodePorts, kubectl, the
in-cluster Prometheus and Jaeger, psql in the PostgreSQL pod), and the host put back.

The tests run in file order on one cluster (conftest.py's `lab`); each adds a row to the
table printed at the end. `make test-cluster` runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dashboards.queries import (
    CLUSTER_ONLY_FILE,
    load_dashboards,
    panels,
    substitute,
    variable_values,
)
from deploy.hostcluster.tests.harness import (
    GATEWAY,
    JAEGER,
    KUBECONFIG,
    KUBECTL,
    NAMESPACE,
    PROMETHEUS,
    REPO,
    Lab,
    kubectl,
    kubectl_json,
    record,
    run,
    say,
    snapshot,
)
from perflab.dev.processes import SERVICES


def wait_for(what: str, check: Any, timeout: float, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def not_ready_pods() -> list[str]:
    pods = kubectl_json("get", "pods", "--all-namespaces")["items"]
    bad = []
    for pod in pods:
        if pod["status"].get("phase") == "Succeeded":  # finished hook jobs
            continue
        ready = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
        if ready.get("Ready") != "True":
            bad.append(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}")
    return bad


def test_every_pod_ready(lab: Lab) -> None:
    wait_for("every pod Ready", lambda: not not_ready_pods(), 300)
    pods = kubectl_json("get", "pods", "--all-namespaces")["items"]
    running = [p for p in pods if p["status"].get("phase") != "Succeeded"]
    record(
        "every pod Ready",
        True,
        f"{len(running)} pods in 4 namespaces; make up took {lab.timings['up']:.0f} s "
        f"(programs built or found in {lab.timings['build']:.0f} s)",
    )


def test_smoke(lab: Lab) -> None:
    """`make smoke`'s checks: orders paid, one trace across the four services in the
    in-cluster Jaeger, every Prometheus target up, HPAs report CPU, pods Ready."""
    started = time.monotonic()
    result = run(
        [
            sys.executable,
            "deploy/scripts/smoke.py",
            *("--gateway", GATEWAY, "--prometheus", PROMETHEUS, "--jaeger", JAEGER),
            *("--kube-context", "perflab-host", "--kubectl", str(KUBECTL)),
            *("--namespace", NAMESPACE, "--timeout", "240"),
        ],
        timeout=1800,
        env={**os.environ, "KUBECONFIG": str(KUBECONFIG)},
    )
    record("make smoke", result.returncode == 0, f"{time.monotonic() - started:.0f} s")
    assert result.returncode == 0, "smoke failed (its output is above)"


def connects(source: str, host: str, port: int) -> bool:
    """Whether a TCP connection from the first pod of deployment/statefulset `source`
    (perflab-<source>) to host:port succeeds within 3 s."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(3)\n"
        f"sys.exit(0 if s.connect_ex(({host!r}, {port})) == 0 else 1)\n"
    )
    result = kubectl(
        "-n", NAMESPACE, "exec", f"deploy/perflab-{source}", "-c", source, "--",
        "python", "-c", code,
        timeout=30,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def test_network_policies_are_enforced(lab: Lab) -> None:
    """The chart's NetworkPolicies, enforced by kube-router's policy controller: each pod
    reaches what its design names and nothing else."""
    pg, redis = "perflab-postgresql", "perflab-redis"
    paths = {
        ("orders", pg, 5432): True,
        ("payments", pg, 5432): True,
        ("gateway", redis, 6379): True,
        ("gateway", pg, 5432): False,
        ("worker", pg, 5432): False,
        ("payments", "perflab-kafka", 9092): False,
    }
    seen = {path: connects(*path) for path in paths}
    wrong = {f"{s}->{h}:{p}": ok for (s, h, p), ok in seen.items() if ok != paths[(s, h, p)]}
    allowed = sum(paths.values())
    record(
        "NetworkPolicies enforced",
        not wrong,
        f"{allowed} allowed paths connect, {len(paths) - allowed} denied paths time out",
    )
    assert not wrong, f"paths whose outcome contradicts the policies (True = connected): {wrong}"


def replicas(deployment: str) -> tuple[int, int]:
    status = kubectl_json("-n", NAMESPACE, "get", "deployment", deployment)
    return status["spec"].get("replicas", 0), status["status"].get("readyReplicas", 0)


def test_spike_scales_the_gateway_out_and_back(lab: Lab) -> None:
    """Reads through the gateway's Service (NodePort) at 60 iterations/s: its HPA must add at
    least one ready replica, and return to its minimum once the load is gone."""
    hpa = kubectl_json("-n", NAMESPACE, "get", "hpa", "perflab-gateway")
    minimum = hpa["spec"].get("minReplicas", 1)
    assert replicas("perflab-gateway") == (minimum, minimum)
    started = time.monotonic()
    load = subprocess.Popen(
        [
            sys.executable, "-m", "loadtests", "run", "deploy/hostcluster/tests/hpa-spike.yaml",
            "--target", GATEWAY, "--metrics", "off", "--progress-every", "10",
            "--out", str(REPO / "results/hostcluster/spike"),
        ],
        cwd=REPO,
    )  # fmt: skip
    peak = minimum
    out_seconds = None
    try:
        while load.poll() is None:
            _, ready = replicas("perflab-gateway")
            peak = max(peak, ready)
            if out_seconds is None and ready >= minimum + 1:
                # from the start of the ramp (15 s into the scenario)
                out_seconds = time.monotonic() - started - 15
                say(f"gateway scaled out: {ready} ready replicas after {out_seconds:.0f} s")
            time.sleep(2)
    finally:
        if load.poll() is None:
            load.send_signal(signal.SIGINT)
        load.wait(timeout=120)
    load_ended = time.monotonic()
    assert out_seconds is not None, f"the gateway never got a second ready replica (peak {peak})"
    wait_for(
        f"the gateway back at {minimum} replica(s)",
        lambda: replicas("perflab-gateway") == (minimum, minimum),
        timeout=600,
        every=3,
    )
    in_seconds = time.monotonic() - load_ended
    window = hpa["spec"].get("behavior", {}).get("scaleDown", {}).get("stabilizationWindowSeconds")
    record(
        "spike: gateway HPA out and back",
        True,
        f"{minimum} -> {peak} ready replicas {out_seconds:.0f} s after the ramp began; "
        f"back to {minimum} {in_seconds:.0f} s after the load ended "
        f"(scale-down window {window} s)",
    )


# Frames of the gateway's own code: its ASGI middleware and its route handlers.
GATEWAY_FRAME = re.compile(
    r"^(AdmissionControl|BodySizeLimit|InjectedFaults|TraceIdHeader)\.|"
    r"^(get_product|list_products|create_order|get_order) "
)


def test_profile_the_gateway_under_load(lab: Lab) -> None:
    """`make profile TARGET=kind` on the gateway while two clients read products through its
    Service (at most 10/s each, a light load): py-spy, in an ephemeral container of the
    gateway's pod, must hand back a flame graph with frames of perflab's code: the gateway's
    own middleware and routes, which every request passes (py-spy titles a frame with its
    function and file, and a file of the `perflab` namespace package by its name alone, e.g.
    `middleware.py`). After the spike, so that neither this load nor py-spy's CPU touches the
    spike's figures."""
    stop = threading.Event()
    reads = [0, 0]

    def read(slot: int) -> None:
        with httpx.Client(base_url=GATEWAY, timeout=5) as client:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.get("/api/products", params={"page_size": 5})
                    reads[slot] += 1
                stop.wait(0.1)

    clients = [threading.Thread(target=read, args=(slot,)) for slot in range(len(reads))]
    for client in clients:
        client.start()
    started = time.monotonic()
    try:
        result = run(
            ["make", "profile", "SERVICE=gateway", "SECONDS=8", "TARGET=kind", "PROVIDER=host"],
            timeout=180,
            stdout=subprocess.PIPE,
        )
    finally:
        stop.set()
        for client in clients:
            client.join()
    took = time.monotonic() - started
    lines = result.stdout.strip().splitlines()
    svg = Path(lines[-1]) if result.returncode == 0 and lines else None
    titles = re.findall(r"<title>([^<]*)</title>", svg.read_text()) if svg and svg.is_file() else []
    ours = [t for t in titles if GATEWAY_FRAME.search(t)]
    record(
        "make profile TARGET=kind (gateway)",
        bool(ours),
        f"{len(titles)} frames, {len(ours)} in perflab's code, {sum(reads)} reads meanwhile; "
        f"{took:.0f} s for an 8 s profile",
    )
    assert result.returncode == 0, f"make profile failed (its errors are above): {result.stdout}"
    assert svg and svg.is_file(), f"no profile at {lines[-1] if lines else '(no path printed)'}"
    assert ours, f"no frame of perflab's code among {len(titles)} frames in {svg}"


def psql(database: str, sql: str) -> list[list[str]]:
    result = kubectl(
        "-n", NAMESPACE, "exec", "perflab-postgresql-0", "-c", "postgresql", "--",
        "psql", "-U", "perflab", "-d", database, "-At", "-F", "\t", "-c", sql,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines() if line]


async def place_orders(rate: float, seconds: float, customer: str) -> tuple[list[str], int]:
    """POSTs orders at `rate` per second; a failed attempt is retried with the same
    Idempotency-Key until it is acknowledged, as a careful client would. Returns the
    acknowledged order ids and the number of failed attempts."""
    acknowledged: list[str] = []
    failures = 0

    async def one(client: httpx.AsyncClient, i: int) -> None:
        nonlocal failures
        body = {"customer_id": customer, "items": [{"product_id": 1 + i % 50, "quantity": 1}]}
        for _ in range(60):
            try:
                response = await client.post(
                    "/api/orders", json=body, headers={"Idempotency-Key": f"{customer}-{i}"}
                )
                if response.status_code in (200, 201, 202):
                    acknowledged.append(response.json()["id"])
                    return
            except httpx.HTTPError:
                pass
            failures += 1
            await asyncio.sleep(1)
        pytest.fail(f"order {i} was never acknowledged")

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=10) as client:
        tasks = []
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(client, i)))
        await asyncio.gather(*tasks)
    return acknowledged, failures


def test_pods_deleted_during_load_lose_and_double_charge_nothing(lab: Lab) -> None:
    """Orders at 8/s for 60 s; 15 s in, a worker pod and an orders pod are deleted. Every
    acknowledged order must end PAID with exactly one payment."""
    customer = f"chaos-{uuid.uuid4().hex[:10]}"
    selector = "app.kubernetes.io/component={}"
    victims = {
        name: kubectl_json("-n", NAMESPACE, "get", "pods", "-l", selector.format(name))["items"][0][
            "metadata"
        ]["name"]
        for name in ("worker", "orders")
    }

    async def scenario() -> tuple[list[str], int, float]:
        orders = asyncio.create_task(place_orders(8, 60, customer))
        await asyncio.sleep(15)
        deleted_at = time.monotonic()
        for pod in victims.values():
            result = kubectl("-n", NAMESPACE, "delete", "pod", pod, "--wait=false")
            assert result.returncode == 0, result.stderr
        say(f"deleted {', '.join(victims.values())}")
        acknowledged, failures = await orders
        return acknowledged, failures, deleted_at

    acknowledged, failures, deleted_at = asyncio.run(scenario())
    # Recovery: both replacements Ready.
    for name in victims:
        wait_for(
            f"a ready {name} pod",
            lambda name=name: replicas(f"perflab-{name}")[1] >= 1,
            timeout=180,
        )
    recovered = time.monotonic() - deleted_at
    ids = ",".join(f"'{i}'" for i in acknowledged)

    def settled() -> dict[str, int] | None:
        rows = psql("orders", f"SELECT status, count(*) FROM orders WHERE id IN ({ids}) GROUP BY 1")
        statuses = {status: int(n) for status, n in rows}
        return None if statuses.get("PENDING") else statuses

    statuses = wait_for("every acknowledged order settled", settled, timeout=300, every=3)
    found = sum(statuses.values())
    charges = psql(
        "payments", f"SELECT order_id, count(*) FROM payments WHERE order_id IN ({ids}) GROUP BY 1"
    )
    twice = [order for order, n in charges if int(n) > 1]
    lost = len(acknowledged) - found
    # Every settled order has its one payment: PAID ones a charge, PAYMENT_FAILED ones the
    # processor's decline (the simulator declines a share on purpose).
    without_payment = found - len(charges)
    record(
        "worker + orders pods deleted under load",
        lost == 0 and not twice and without_payment == 0,
        f"{len(acknowledged)} orders acknowledged, {lost} lost, {len(twice)} charged twice, "
        f"{without_payment} without a payment, statuses {statuses}; {failures} failed attempts "
        f"retried; replacements Ready {recovered:.0f} s after the deletion",
    )
    assert lost == 0, f"{lost} acknowledged orders are missing"
    assert not twice, f"charged twice: {twice}"
    assert without_payment == 0, f"{without_payment} settled orders have no payment"
    assert set(statuses) <= {"PAID", "PAYMENT_FAILED"}, statuses


def query_range(expr: str, minutes: int) -> bool:
    now = time.time()
    response = httpx.get(
        f"{PROMETHEUS}/api/v1/query_range",
        params={"query": expr, "start": now - minutes * 60, "end": now, "step": 15},
        timeout=30,
    )
    body = response.json()
    assert body.get("status") == "success", f"{expr}: {body}"
    return any(
        any(not math.isnan(float(v)) for _, v in series["values"])
        for series in body["data"]["result"]
    )


def not_deployed_exporters() -> set[str]:
    """Exporters dashboards/cluster_only.yml says nothing deploys yet (their panels sit in a
    collapsed row on every provider)."""
    spec = yaml.safe_load(CLUSTER_ONLY_FILE.read_text())["exporters"]
    return {name for name, info in spec.items() if str(info["deployed"]).startswith("not yet")}


def test_dashboard_queries_return_data(lab: Lab) -> None:
    """Every panel of every dashboard returns data from the in-cluster Prometheus over the
    load just run, with Grafana's variables substituted. As in the local check
    (tests/dashboards/test_live.py): each query returns data for some choice of the service
    variable, and the panel returns data for every choice. Not checked, and counted in the
    table: the load generator's panels (they need Locust in the cluster, LOCUST=1) and those
    of exporters nothing deploys yet."""
    undeployed = not_deployed_exporters()
    missing: list[str] = []
    checked, loadgen, not_deployed = 0, 0, 0
    for dashboard in load_dashboards():
        defaults = variable_values(dashboard)
        service_variable = any(v["name"] == "service" for v in dashboard["templating"]["list"])
        choices = [{**defaults, "service": s} for s in SERVICES] if service_variable else [defaults]
        for panel in panels(dashboard):
            if panel.source == "loadgen":
                loadgen += 1
                continue
            if set(panel.source.removeprefix("cluster:").split("+")) <= undeployed:
                not_deployed += 1
                continue
            checked += 1
            data = {
                (t["refId"], i): query_range(substitute(t["expr"], values), minutes=15)
                for t, (i, values) in itertools.product(panel.json["targets"], enumerate(choices))
            }
            for t in panel.json["targets"]:
                if not any(data[(t["refId"], i)] for i in range(len(choices))):
                    missing.append(f"{panel} query {t['refId']}: {t['expr']}")
            for i, values in enumerate(choices):
                if not any(data[(t["refId"], i)] for t in panel.json["targets"]):
                    missing.append(f"{panel} for {values.get('service')}: no query has data")
    record(
        "dashboards' queries have data",
        not missing,
        f"{checked - len({m.split(' query ')[0].split(' for ')[0] for m in missing})}/{checked} "
        f"panels with data; not checked: {loadgen} load-generator panels (LOCUST=1), "
        f"{not_deployed} of exporters not deployed yet ({', '.join(sorted(undeployed))})",
    )
    assert not missing, "queries without data:\n" + "\n".join(missing)


def test_down_restores_the_host(lab: Lab) -> None:
    started = time.monotonic()
    result = run(["make", "down", "PROVIDER=host"], timeout=600)
    lab.down = True
    assert result.returncode == 0
    after = snapshot()
    gone = sorted(set(lab.before) - set(after))
    added = sorted(set(after) - set(lab.before))
    record(
        "make down restores the host",
        not gone and not added,
        f"{len(lab.before)} facts compared (sysctls, iptables chains and rule counts, ipsets, "
        f"mounts, links, addresses, routes, netns, CNI files, processes); "
        f"{len(gone) + len(added)} differ; down took {time.monotonic() - started:.0f} s",
    )
    assert not gone and not added, f"missing after down: {gone}\nadded by the run: {added}"
