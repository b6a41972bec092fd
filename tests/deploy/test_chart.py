"""The chart renders, passes `helm lint --strict`, and every manifest is valid against the
Kubernetes schemas of the version kind runs (kubernetes-validate, strict: unknown fields fail)
and, for ServiceMonitors and PrometheusRules, against the Prometheus Operator's CRDs. Plus
the structural promises: names, labels, selectors, ports, probes, HPAs, security contexts,
NetworkPolicies, hooks and the values schema."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "perflab"
SCENARIOS = ["default", *sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))]
# Custom resources, validated against their CRDs instead of kubernetes-validate's schemas.
CRD_KINDS = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
BUILTIN_KINDS = {
    "ConfigMap",
    "Deployment",
    "HorizontalPodAutoscaler",
    "Job",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "Secret",
    "Service",
    "ServiceAccount",
    "StatefulSet",
}
# Containers whose root filesystem cannot be read-only (the Kafka image writes its
# configuration under /opt/kafka at start).
WRITABLE_ROOT = {"kafka"}


def scenario_values(name: str) -> list[Path]:
    return [] if name == "default" else [CHART / "ci" / name]


# --- rendering and schemas -------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(helm, scenario):
    args = ["lint", "--strict", str(CHART), "--kube-version", "1.37.0"]
    for v in scenario_values(scenario):
        args += ["--values", str(v)]
    result = helm.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_manifest_is_valid_kubernetes(rendered_scenarios, scenario, lib):
    rendered = rendered_scenarios[scenario]
    kinds = {d["kind"] for d in rendered.docs}
    assert kinds <= BUILTIN_KINDS | set(CRD_KINDS), (
        f"unvalidated kinds: {kinds - BUILTIN_KINDS - set(CRD_KINDS)}"
    )
    errors = []
    for doc in rendered.docs:
        # ConfigMaps (dashboards) and Secrets hold at most 1 MiB.
        assert len(json.dumps(doc)) < 1_000_000, (
            f"{doc['kind']}/{doc['metadata']['name']} is too large"
        )
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, lib.KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(
                f"{doc['kind']}/{doc['metadata']['name']}: "
                f"{'.'.join(map(str, exc.path))}: {exc.message}"
            )
    assert not errors, "\n".join(errors)


def strict_crd_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD's structural schema with unknown fields rejected (as the API server's strict
    field validation does), except where the CRD preserves unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # apiVersion/kind/metadata are checked by the API server itself, not the CRD schema.
    schema.setdefault("properties", {}).update(
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
        }
    )
    return schema


@pytest.fixture(scope="session")
def crd_validators(crd_dir) -> dict[str, jsonschema.Validator]:
    validators = {}
    for kind, filename in CRD_KINDS.items():
        crd = yaml.safe_load((crd_dir / filename).read_text())
        assert crd["spec"]["names"]["kind"] == kind
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        validators[kind] = jsonschema.Draft7Validator(
            strict_crd_schema(version["schema"]["openAPIV3Schema"])
        )
    return validators


def crd_errors(validators, docs) -> list[str]:
    errors = []
    for doc in docs:
        if doc["kind"] not in CRD_KINDS:
            continue
        assert doc["apiVersion"] == "monitoring.coreos.com/v1", doc["apiVersion"]
        for error in validators[doc["kind"]].iter_errors(doc):
            errors.append(
                f"{doc['kind']}/{doc['metadata']['name']}: "
                f"{'.'.join(map(str, error.path))}: {error.message}"
            )
    return errors


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_monitoring_resources_are_valid_against_their_crds(
    rendered_scenarios, crd_validators, scenario
):
    assert not crd_errors(crd_validators, rendered_scenarios[scenario].docs)


def test_crd_validation_catches_a_bad_field(crd_validators, rendered_default):
    monitor = copy.deepcopy(rendered_default.of_kind("ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["portt"] = "http"
    assert crd_errors(crd_validators, [monitor])


@pytest.fixture
def chart_with_assets(tmp_path) -> Path:
    """A copy of the chart with a dashboard and a rules file of known content."""
    chart = tmp_path / "perflab"
    shutil.copytree(CHART, chart)
    (chart / "dashboards" / "lab_overview.json").write_text(
        json.dumps(
            {"uid": "perflab-overview", "title": "Lab overview {{ not a template }}", "panels": []},
            indent=2,
        )
    )
    (chart / "rules" / "slo.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "perflab-slo",
                        "rules": [
                            {
                                "record": "perflab:requests:rate5m",
                                "expr": "sum(rate(http_server_duration_seconds_count[5m]))",
                            },
                            {
                                "alert": "PerflabTargetDown",
                                "expr": "up == 0",
                                "for": "2m",
                                "labels": {"severity": "warning"},
                                "annotations": {"summary": "{{ $labels.job }} is down"},
                            },
                        ],
                    }
                ]
            }
        )
    )
    return chart


def test_dashboards_and_rules_render_verbatim(helm, chart_with_assets, crd_validators, lib):
    result = helm.run("template", "perflab", str(chart_with_assets), "--namespace", "perflab")
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    dashboard = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "perflab-dashboard-lab-overview"
    )
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert (
        dashboard["data"]["lab_overview.json"]
        == (chart_with_assets / "dashboards" / "lab_overview.json").read_text()
    )
    kubernetes_validate.validate(dashboard, lib.KUBE_VERSION, strict=True)
    rule = next(
        d
        for d in docs
        if d["kind"] == "PrometheusRule" and d["metadata"]["name"] == "perflab-rules-slo"
    )
    source = yaml.safe_load((chart_with_assets / "rules" / "slo.yml").read_text())
    assert rule["spec"] == source
    assert not crd_errors(crd_validators, [rule])


# --- values schema and template guards --------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "services.gatway.enabled=false",
        "services.gateway.autoscalling.enabled=false",
        "postgress.enabled=false",
        "kafka.topics.partition=3",
        "services.orders.env.db_pool_size=3",
        "services.worker.autoscaling.maxReplica=3",
    ],
)
def test_values_schema_rejects_a_misspelled_key(helm, bad):
    error = helm.render_error(sets=[bad])
    assert "values don't meet the specifications of the schema" in error
    assert "not allowed" in error or "does not match pattern" in error


@pytest.mark.parametrize(
    "sets",
    [
        ["services.worker.autoscaling.maxReplicas=7"],
        ["services.worker.autoscaling.enabled=false", "services.worker.replicas=7"],
        ["kafka.topics.partitions=2"],
    ],
)
def test_worker_replicas_beyond_partitions_fail(helm, sets):
    assert "exceed kafka.topics.partitions" in helm.render_error(sets=sets)


def test_worker_may_scale_to_the_partition_count(helm):
    hpa = helm.render(
        sets=["kafka.topics.partitions=8", "services.worker.autoscaling.maxReplicas=8"]
    ).get("HorizontalPodAutoscaler", "perflab-worker")
    assert hpa["spec"]["maxReplicas"] == 8


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["postgresql.enabled=false"], "postgresql.external.host is required"),
        (["redis.enabled=false"], "redis.external.url is required"),
        (["kafka.enabled=false"], "kafka.external.bootstrapServers is required"),
        (["jaeger.enabled=false"], "jaeger.external.otlpEndpoint is required"),
        (["services.orders.enabled=false"], "depends on orders, which is disabled"),
    ],
)
def test_switched_off_infrastructure_needs_an_address(helm, sets, message):
    assert message in helm.render_error(sets=sets)


# --- names, labels, selectors -------------------------------------------------------------


def test_names_are_prefixed_unique_and_do_not_collide_across_releases(helm):
    a = helm.render(release="lab-a")
    b = helm.render(release="lab-b")
    for rendered, prefix in ((a, "lab-a-perflab"), (b, "lab-b-perflab")):
        keys = [(d["kind"], d["metadata"]["name"]) for d in rendered.docs]
        assert len(keys) == len(set(keys)), "duplicate resource names"
        assert all(name.startswith(prefix) for _, name in keys), [
            n for _, n in keys if not n.startswith(prefix)
        ]
        assert all(len(name) <= 63 for _, name in keys)
    assert not {d["metadata"]["name"] for d in a.docs} & {d["metadata"]["name"] for d in b.docs}


STANDARD_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
}
SELECTOR_KEYS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_standard_labels_and_selectors(rendered_scenarios, scenario):
    rendered = rendered_scenarios[scenario]
    for doc in rendered.docs:
        assert set(doc["metadata"]["labels"]) >= STANDARD_LABELS, doc["metadata"]["name"]
    for doc in rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet"):
        selector = doc["spec"]["selector"]["matchLabels"]
        assert set(selector) == SELECTOR_KEYS, doc["metadata"]["name"]
        assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    for doc in rendered.of_kind("Service"):
        assert set(doc["spec"]["selector"]) == SELECTOR_KEYS, doc["metadata"]["name"]


def pods(rendered) -> list[dict[str, Any]]:
    return rendered.workloads()


def pod_labels(workload) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_selector_matches_its_pods(rendered_scenarios, scenario):
    rendered = rendered_scenarios[scenario]
    long_running = rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet")
    for service in rendered.of_kind("Service"):
        matched = [w for w in long_running if selects(service["spec"]["selector"], pod_labels(w))]
        assert len(matched) == 1, (
            f"Service {service['metadata']['name']} selects {len(matched)} workloads"
        )
        assert not [
            j
            for j in rendered.of_kind("Job")
            if selects(service["spec"]["selector"], pod_labels(j))
        ], "a Service would route traffic to a hook Job's pod"
    for pdb in rendered.of_kind("PodDisruptionBudget"):
        assert [
            w
            for w in long_running
            if selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(w))
        ]
    for policy in rendered.of_kind("NetworkPolicy"):
        assert [
            w
            for w in pods(rendered)
            if selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels(w))
        ], f"NetworkPolicy {policy['metadata']['name']} selects no pod"
    for sts in rendered.of_kind("StatefulSet"):
        rendered.get("Service", sts["spec"]["serviceName"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_port_a_service_probe_or_monitor_names_exists(rendered_scenarios, scenario, lib):
    rendered = rendered_scenarios[scenario]
    long_running = rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet")
    for service in rendered.of_kind("Service"):
        workload = next(
            w for w in long_running if selects(service["spec"]["selector"], pod_labels(w))
        )
        ports = {
            p["name"]: p["containerPort"]
            for c in lib.containers(workload)
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert target in ports or target in ports.values(), (
                f"{service['metadata']['name']}: {target}"
            )
    for workload in long_running:
        for container in lib.containers(workload):
            names = {p["name"] for p in container.get("ports", [])}
            numbers = {p["containerPort"] for p in container.get("ports", [])}
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = container.get(kind)
                if not probe:
                    continue
                if "grpc" in probe:
                    assert probe["grpc"]["port"] in numbers, (workload["metadata"]["name"], kind)
                for action in ("httpGet", "tcpSocket"):
                    if action in probe:
                        port = probe[action]["port"]
                        assert port in names or port in numbers, (
                            workload["metadata"]["name"],
                            kind,
                            port,
                        )
    for monitor in rendered.of_kind("ServiceMonitor"):
        service = next(
            s
            for s in rendered.of_kind("Service")
            if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
            and s["spec"].get("clusterIP") != "None"
        )
        names = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in names, (monitor["metadata"]["name"], endpoint["port"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_hpa_targets_a_deployment_with_cpu_requests(rendered_scenarios, scenario, lib):
    rendered = rendered_scenarios[scenario]
    for hpa in rendered.of_kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        deployment = rendered.get(target["kind"], target["name"])
        assert "replicas" not in deployment["spec"], "a fixed replica count fights the HPA"
        for container in lib.containers(deployment, init=True):
            assert lib.quantity(container["resources"]["requests"]["cpu"]) > 0, container["name"]
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert hpa["spec"]["behavior"]["scaleUp"] and hpa["spec"]["behavior"]["scaleDown"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pods_are_non_root_read_only_and_capability_free(rendered_scenarios, scenario, lib):
    rendered = rendered_scenarios[scenario]
    for workload in pods(rendered):
        spec = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in lib.containers(workload, init=True):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert context["capabilities"]["drop"] == ["ALL"], (name, container["name"])
            assert context["readOnlyRootFilesystem"] is (container["name"] not in WRITABLE_ROOT), (
                name,
                container["name"],
            )
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), (name, container["name"])
            assert "memory" in resources["limits"], (name, container["name"])


def test_service_pods_get_tmp_probes_and_graceful_shutdown(rendered_default, lib):
    for name in lib.SERVICES:
        deployment = rendered_default.get("Deployment", f"perflab-{name}")
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"]
        assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container)
        assert deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        assert spec["serviceAccountName"] == f"perflab-{name}"
        rendered_default.get("ServiceAccount", f"perflab-{name}")
        rendered_default.get("PodDisruptionBudget", f"perflab-{name}")
        rendered_default.get("HorizontalPodAutoscaler", f"perflab-{name}")
        rendered_default.get("ServiceMonitor", f"perflab-{name}")


def test_a_saturated_gateway_replica_keeps_answering_its_probes(rendered_default):
    """The autoscaling experiment's first full run found a replica with room for 256
    requests: saturated, its event loop queued seconds of CPU work in front of the kubelet's
    probes, which failed, and the replica left the Service or was restarted. The bound on
    requests in flight must keep that queue (at one CPU, each request costing the
    experiment's CPU burn) within half the readiness probe's timeout."""
    from experiments.autoscaling.experiment import BURN_MS

    container = rendered_default.get("Deployment", "perflab-gateway")["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = rendered_default.get("ConfigMap", "perflab-gateway")["data"]
    assert container["resources"]["limits"]["cpu"] in ("1", 1)
    queue_s = int(env["MAX_IN_FLIGHT"]) * BURN_MS / 1000
    assert queue_s <= container["readinessProbe"]["timeoutSeconds"] / 2, queue_s


def test_checksum_changes_only_for_the_service_whose_config_changed(helm, rendered_default, lib):
    changed = helm.render(sets=["services.payments.env.PAYMENT_DECLINE_RATE=0.5"])

    def checksum(rendered, name):
        return rendered.get("Deployment", f"perflab-{name}")["spec"]["template"]["metadata"][
            "annotations"
        ]["checksum/config"]

    assert checksum(changed, "payments") != checksum(rendered_default, "payments")
    for name in ("gateway", "orders", "worker"):
        assert checksum(changed, name) == checksum(rendered_default, name)
    password = helm.render(sets=["postgresql.auth.password=other"])
    assert checksum(password, "orders") != checksum(rendered_default, "orders")


def test_hook_jobs_run_after_install_and_upgrade_in_order(rendered_default):
    jobs = {j["metadata"]["name"]: j for j in rendered_default.of_kind("Job")}
    assert set(jobs) == {
        "perflab-kafka-topics",
        "perflab-orders-migrate",
        "perflab-payments-migrate",
        "perflab-orders-seed",
    }
    weights = {}
    for name, job in jobs.items():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        weights[name] = int(annotations["helm.sh/hook-weight"])
    assert weights["perflab-orders-seed"] > weights["perflab-orders-migrate"]
    topics = jobs["perflab-kafka-topics"]["spec"]["template"]["spec"]["containers"][0]
    assert topics["command"] == ["python", "-m", "perflab.common.kafka_admin"]
    assert topics["args"] == ["create-topics", "--partitions", "6"]
    seed = jobs["perflab-orders-seed"]["spec"]["template"]["spec"]
    assert seed["initContainers"][0]["env"][0]["value"] == "perflab-postgresql:5432"


# --- NetworkPolicies ------------------------------------------------------------------------


def policy_for(rendered, labels) -> list[dict[str, Any]]:
    return [
        p
        for p in rendered.of_kind("NetworkPolicy")
        if selects(p["spec"]["podSelector"]["matchLabels"], labels)
    ]


def rule_ports(rule) -> set[int]:
    return {p["port"] for p in rule.get("ports", [])}


def admits(policy, labels: dict[str, str], port: int) -> bool:
    """Does the policy let a pod with `labels` (same namespace) in on `port`?"""
    for rule in policy["spec"].get("ingress", []):
        if port not in rule_ports(rule):
            continue
        sources = rule.get("from")
        if not sources:
            return True
        if any(
            "podSelector" in s
            and "namespaceSelector" not in s
            and selects(s["podSelector"].get("matchLabels", {}), labels)
            for s in sources
        ):
            return True
    return False


def lets_out(policy, target_labels: dict[str, str], port: int) -> bool:
    for rule in policy["spec"].get("egress", []):
        if port not in rule_ports(rule):
            continue
        for dest in rule.get("to", []):
            if "ipBlock" in dest:
                return True
            if (
                "podSelector" in dest
                and "namespaceSelector" not in dest
                and selects(dest["podSelector"].get("matchLabels", {}), target_labels)
            ):
                return True
    return False


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "minimal-values.yaml"])
def test_network_policies_allow_exactly_the_declared_connections(rendered_scenarios, scenario, lib):
    rendered = rendered_scenarios[scenario]
    workloads = pods(rendered)
    long_running = rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet")
    by_component = {pod_labels(w)["app.kubernetes.io/component"]: w for w in long_running}
    checked = 0
    for workload in workloads:
        labels = pod_labels(workload)
        own = policy_for(rendered, labels)
        assert len(own) == 1, f"{workload['metadata']['name']} is selected by {len(own)} policies"
        assert set(own[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        dns = own[0]["spec"]["egress"][0] if own[0]["spec"]["egress"] else None
        for key in labels:
            if not key.startswith("perflab/uses-"):
                continue
            target = key.removeprefix("perflab/uses-")
            if target not in by_component:
                continue  # outside the release: egress by port, checked in the external scenario
            target_pod = by_component[target]
            target_policy = policy_for(rendered, pod_labels(target_pod))[0]
            serving = [
                p["containerPort"]
                for c in lib.containers(target_pod)
                for p in c.get("ports", [])
                if p["name"] not in ("metrics", "controller", "health")
            ]
            assert serving
            assert any(admits(target_policy, labels, port) for port in serving), (
                f"{target} does not admit {workload['metadata']['name']}"
            )
            assert any(lets_out(own[0], pod_labels(target_pod), port) for port in serving), (
                f"{workload['metadata']['name']} may not connect to {target}"
            )
            checked += 1
        if dns is not None and lib.containers(workload)[0]["name"] not in ("postgresql", "redis"):
            assert {p["port"] for p in dns["ports"]} == {53}
    # Nobody else gets into the databases: only pods that declare the dependency.
    if "postgresql" in by_component:
        policy = policy_for(rendered, pod_labels(by_component["postgresql"]))[0]
        assert not admits(policy, pod_labels(by_component["gateway"]), 5432)
        assert not policy["spec"]["egress"], "PostgreSQL needs no egress"
    assert checked or scenario == "external-infra-values.yaml"


def test_prometheus_may_scrape_every_metrics_port(rendered_default):
    for monitor in rendered_default.of_kind("ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        service = next(
            s for s in rendered_default.of_kind("Service") if s["spec"]["selector"] == selector
        )
        port = next(
            p
            for p in service["spec"]["ports"]
            if p["name"] == monitor["spec"]["endpoints"][0]["port"]
        )
        policy = policy_for(rendered_default, selector)[0]
        rules = [r for r in policy["spec"]["ingress"] if port["port"] in rule_ports(r)]
        assert any(
            not r.get("from") or any("namespaceSelector" in s for s in r["from"]) for r in rules
        ), monitor["metadata"]["name"]


def test_external_dependencies_get_egress_by_port(rendered_scenarios):
    rendered = rendered_scenarios["external-infra-values.yaml"]
    orders = policy_for(rendered, pod_labels(rendered.get("Deployment", "perflab-orders")))[0]
    external = {
        p["port"]
        for r in orders["spec"]["egress"]
        for p in r["ports"]
        if any("ipBlock" in t for t in r.get("to", []))
    }
    # PostgreSQL, Kafka, Redis (the fault switches), OTLP from ci/external-infra-values.yaml
    assert external == {6432, 9094, 6380, 4317}
