#!/usr/bin/env python3
"""End-to-end smoke checks of a running perflab: the same checks against `make local` and the
kind cluster, given their base URLs.

    deploy/scripts/smoke.py                                  # the kind cluster's URLs
    deploy/scripts/smoke.py --gateway http://127.0.0.1:18080 \\
        --prometheus http://127.0.0.1:19090 --jaeger http://127.0.0.1:16686   # `make local`
    deploy/scripts/smoke.py --kube-context kind-perflab      # plus the cluster-only checks

Checks: orders placed through the gateway reach a final status (PAID or PAYMENT_FAILED); one
trace in Jaeger spans gateway, orders, worker and payments; every Prometheus target is up and
the four services are among them; with --kube-context, every HPA reports a current CPU value
(not <unknown>) and every pod is Ready. Standard library only, so it runs without the venv.
Exits 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

SERVICES = ("gateway", "orders", "payments", "worker")
FINAL_STATUSES = {"PAID", "PAYMENT_FAILED"}


class CheckFailed(Exception):
    pass


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """Returns (status, parsed JSON or text); network errors raise CheckFailed."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise CheckFailed(f"{method} {url}: {exc}") from exc
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def eventually(what: str, attempt: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
    """Retries `attempt` until it returns without CheckFailed or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except CheckFailed as exc:
            if time.monotonic() >= deadline:
                raise CheckFailed(f"{what}: still failing after {timeout:.0f}s: {exc}") from exc
            time.sleep(interval)


def normalize_status(status: Any) -> str:
    # The API may spell the enum "PAID" or "ORDER_STATUS_PAID".
    return str(status).upper().removeprefix("ORDER_STATUS_")


def check_orders(gateway: str, count: int, timeout: float) -> list[str]:
    def ready() -> None:
        status, body = http("GET", f"{gateway}/readyz")
        if status != 200:
            raise CheckFailed(f"/readyz answered {status}: {body}")

    eventually("gateway ready", ready, timeout)

    status, body = http("GET", f"{gateway}/api/products?page_size=5")
    if status != 200:
        raise CheckFailed(f"GET /api/products answered {status}: {body}")
    products = body.get("products", []) if isinstance(body, dict) else []
    if not products:
        raise CheckFailed(f"the catalog is empty (was the seed job run?): {body}")

    order_ids = []
    customer = f"smoke-{uuid.uuid4().hex[:12]}"
    for i in range(count):
        product = products[i % len(products)]
        status, body = http(
            "POST",
            f"{gateway}/api/orders",
            {"customer_id": customer, "items": [{"product_id": product["id"], "quantity": 1}]},
            headers={"Idempotency-Key": f"{customer}-{i}"},
        )
        if status not in (200, 201, 202) or not isinstance(body, dict) or "id" not in body:
            raise CheckFailed(f"POST /api/orders answered {status}: {body}")
        order_ids.append(str(body["id"]))

    def all_final() -> dict[str, str]:
        statuses = {}
        for order_id in order_ids:
            status, body = http("GET", f"{gateway}/api/orders/{order_id}")
            if status != 200 or not isinstance(body, dict):
                raise CheckFailed(f"GET /api/orders/{order_id} answered {status}: {body}")
            statuses[order_id] = normalize_status(body.get("status"))
        pending = {k: v for k, v in statuses.items() if v not in FINAL_STATUSES}
        if pending:
            raise CheckFailed(f"not final yet: {pending}")
        return statuses

    statuses = eventually("orders reach a final status", all_final, timeout, interval=1.0)
    print(f"  {len(statuses)} orders final: {sorted(statuses.values())}")
    return order_ids


def check_trace(jaeger: str, timeout: float) -> None:
    wanted = set(SERVICES)

    def find() -> str:
        query = urllib.parse.urlencode({"service": "worker", "lookback": "1h", "limit": "50"})
        status, body = http("GET", f"{jaeger}/api/traces?{query}")
        if status != 200 or not isinstance(body, dict):
            raise CheckFailed(f"Jaeger answered {status}: {body}")
        seen: set[str] = set()
        for trace in body.get("data") or []:
            services = {p.get("serviceName") for p in (trace.get("processes") or {}).values()}
            seen |= services
            if wanted <= services:
                return str(trace.get("traceID"))
        raise CheckFailed(f"no trace spans all of {sorted(wanted)} (services seen: {sorted(seen)})")

    trace_id = eventually("a trace across the four services", find, timeout)
    print(f"  trace {trace_id} spans {', '.join(SERVICES)}")


def check_targets(prometheus: str, timeout: float) -> None:
    def targets_up() -> int:
        status, body = http("GET", f"{prometheus}/api/v1/targets?state=active")
        if status != 200 or not isinstance(body, dict):
            raise CheckFailed(f"Prometheus answered {status}: {body}")
        targets = body["data"]["activeTargets"]
        down = [
            f"{t['labels'].get('job')} {t.get('scrapeUrl')}: {t.get('health')} "
            f"{t.get('lastError', '')}"
            for t in targets
            if t.get("health") != "up"
        ]
        jobs = {t["labels"].get("job", "") for t in targets}
        missing = [s for s in SERVICES if not any(s in job for job in jobs)]
        if down or missing:
            raise CheckFailed(f"targets not up: {down}; services without a target: {missing}")
        return len(targets)

    count = eventually("every Prometheus target up", targets_up, timeout)
    print(f"  {count} targets up")


def kubectl_json(kubectl: str, context: str, *args: str) -> Any:
    command = [kubectl, "--context", context, *args, "-o", "json"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CheckFailed(f"{' '.join(command)}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def check_hpas(kubectl: str, context: str, namespace: str, timeout: float) -> None:
    def current() -> list[str]:
        hpas = kubectl_json(kubectl, context, "-n", namespace, "get", "hpa")["items"]
        if not hpas:
            raise CheckFailed("no HorizontalPodAutoscalers")
        unknown, seen = [], []
        for hpa in hpas:
            name = hpa["metadata"]["name"]
            cpu = [
                m["resource"]["current"].get("averageUtilization")
                for m in (hpa.get("status", {}).get("currentMetrics") or [])
                if m.get("type") == "Resource" and m.get("resource", {}).get("name") == "cpu"
            ]
            if not cpu or cpu[0] is None:
                unknown.append(name)
            else:
                seen.append(f"{name}={cpu[0]}%")
        if unknown:
            raise CheckFailed(f"HPAs with CPU <unknown> (is metrics-server up?): {unknown}")
        return seen

    print(f"  HPAs report CPU: {', '.join(eventually('HPAs report CPU', current, timeout, 5.0))}")


def check_pods(kubectl: str, context: str, namespace: str, timeout: float) -> None:
    def ready() -> int:
        pods = kubectl_json(kubectl, context, "-n", namespace, "get", "pods")["items"]
        not_ready = []
        for pod in pods:
            if pod["status"].get("phase") == "Succeeded":  # finished hook jobs
                continue
            conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
            if conditions.get("Ready") != "True":
                not_ready.append(f"{pod['metadata']['name']} ({pod['status'].get('phase')})")
        if not pods or not_ready:
            raise CheckFailed(f"pods not Ready: {not_ready or 'no pods'}")
        return len(pods)

    print(f"  {eventually('every pod Ready', ready, timeout, 5.0)} pods Ready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://localhost:8080", help="gateway base URL")
    parser.add_argument("--prometheus", default="http://localhost:9090", help="Prometheus base URL")
    parser.add_argument("--jaeger", default="http://localhost:16686", help="Jaeger UI/API base URL")
    parser.add_argument("--orders", type=int, default=3, help="orders to place (default 3)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds each check may retry")
    parser.add_argument("--kube-context", help="also run the cluster-only checks on this context")
    parser.add_argument("--namespace", default="perflab", help="namespace of the release")
    parser.add_argument("--kubectl", default="kubectl", help="kubectl binary")
    args = parser.parse_args(argv)

    gateway, prometheus, jaeger = (
        u.rstrip("/") for u in (args.gateway, args.prometheus, args.jaeger)
    )
    checks: list[tuple[str, Callable[[], Any]]] = [
        ("orders reach a final status", lambda: check_orders(gateway, args.orders, args.timeout)),
        ("a trace spans the four services", lambda: check_trace(jaeger, args.timeout)),
        ("every Prometheus target is up", lambda: check_targets(prometheus, args.timeout)),
    ]
    if args.kube_context:
        checks += [
            (
                "every HPA reports CPU",
                lambda: check_hpas(args.kubectl, args.kube_context, args.namespace, args.timeout),
            ),
            (
                "every pod is Ready",
                lambda: check_pods(args.kubectl, args.kube_context, args.namespace, args.timeout),
            ),
        ]

    failed = 0
    for name, check in checks:
        print(f"- {name}", flush=True)
        try:
            check()
            print("  PASS", flush=True)
        except CheckFailed as exc:
            failed += 1
            print(f"  FAIL: {exc}", flush=True)
    print(f"smoke: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
