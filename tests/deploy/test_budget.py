"""Resource budget: everything `make up` installs (our chart at its minimum replicas, plus
kube-prometheus-stack and metrics-server as configured in deploy/monitoring/) fits in 3 CPUs and
4 GiB of requests, so the lab runs beside a browser on an 8 GiB laptop. Kubernetes' own
control-plane pods (about 0.95 CPU / 0.3 GiB on kind) come on top and are not counted; nor
are the short-lived hook Jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CPU_BUDGET = 3.0
MEMORY_BUDGET = 4 * 2**30


def pod_requests(spec, quantity) -> tuple[float, float]:
    """A pod's effective requests: the larger of its app containers' sum and any init container."""

    def of(container):
        requests = container.get("resources", {}).get("requests", {})
        return quantity(requests.get("cpu", 0)), quantity(requests.get("memory", 0))

    app = [of(c) for c in spec["containers"]]
    init = [of(c) for c in spec.get("initContainers", [])]
    cpu = max([sum(c for c, _ in app), *(c for c, _ in init)])
    memory = max([sum(m for _, m in app), *(m for _, m in init)])
    return cpu, memory


def chart_requests(rendered, quantity) -> tuple[float, float]:
    minimum = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["minReplicas"]
        for h in rendered.of_kind("HorizontalPodAutoscaler")
    }
    cpu = memory = 0.0
    for workload in rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet"):
        replicas = minimum.get(workload["metadata"]["name"], workload["spec"].get("replicas", 1))
        c, m = pod_requests(workload["spec"]["template"]["spec"], quantity)
        cpu += replicas * c
        memory += replicas * m
    return cpu, memory


def external_requests(quantity) -> dict[str, tuple[float, float]]:
    """Requests of the external charts' pods, read from our values files (every component
    counted must have explicit requests there, so a removed one is noticed)."""
    kps = yaml.safe_load((ROOT / "deploy/monitoring/kube-prometheus-stack.values.yaml").read_text())
    ms = yaml.safe_load((ROOT / "deploy/monitoring/metrics-server.values.yaml").read_text())

    def req(resources):
        return quantity(resources["requests"]["cpu"]), quantity(resources["requests"]["memory"])

    reloader = req(kps["prometheusOperator"]["prometheusConfigReloader"]["resources"])
    sidecar = req(kps["grafana"]["sidecar"]["resources"])
    assert kps["alertmanager"]["enabled"] is False, "Alertmanager is not in the budget"
    return {
        "prometheus": tuple(
            a + b
            for a, b in zip(
                req(kps["prometheus"]["prometheusSpec"]["resources"]), reloader, strict=True
            )
        ),
        "prometheus-operator": req(kps["prometheusOperator"]["resources"]),
        "grafana (+2 sidecars)": tuple(
            a + 2 * b for a, b in zip(req(kps["grafana"]["resources"]), sidecar, strict=True)
        ),
        "kube-state-metrics": req(kps["kube-state-metrics"]["resources"]),
        "node-exporter": req(kps["prometheus-node-exporter"]["resources"]),
        "metrics-server": req(ms["resources"]),
    }


@pytest.mark.parametrize("scenario", ["default", "locust-values.yaml"])
def test_everything_make_up_installs_fits_the_budget(rendered_scenarios, scenario, lib):
    cpu, memory = chart_requests(rendered_scenarios[scenario], lib.quantity)
    external = external_requests(lib.quantity)
    cpu += sum(c for c, _ in external.values())
    memory += sum(m for _, m in external.values())
    report = f"{cpu:.2f} CPU, {memory / 2**30:.2f} GiB requested"
    print(report)
    assert cpu <= CPU_BUDGET, report
    assert memory <= MEMORY_BUDGET, report


def test_budget_counts_replicas_and_init_containers(rendered_default, lib):
    spec = {
        "containers": [{"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}] * 2,
        "initContainers": [{"resources": {"requests": {"cpu": "500m", "memory": "32Mi"}}}],
    }
    assert pod_requests(spec, lib.quantity) == (0.5, 128 * 2**20)
    cpu, _ = chart_requests(rendered_default, lib.quantity)
    assert cpu > 0.5
