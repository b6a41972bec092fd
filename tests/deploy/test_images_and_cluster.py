"""The images, skaffold.yaml, the kind config and the monitoring values agree with the chart:
each Dockerfile copies paths that exist (and that its .dockerignore lets through), runs the
module the chart runs, as the user the chart expects; skaffold builds exactly the images the
chart deploys; the kind port mappings reach the node ports the charts open; Grafana points at
the release's Jaeger."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from perflab.dev.processes import SERVICES

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "perflab"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
KPS = yaml.safe_load((ROOT / "deploy/monitoring/kube-prometheus-stack.values.yaml").read_text())


def dockerfile(service: str) -> str:
    return (ROOT / "services" / service / "Dockerfile").read_text()


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics for the patterns used here: the last matching
    pattern wins, `!` re-includes, a directory pattern covers what is below it."""
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.rstrip("/")
        candidates = [pattern, pattern.replace("**/", "")]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatchcase(prefix, c) or (c == "*" and prefix == parts[0])
            for c in candidates
            for prefix in prefixes
        ):
            result = not negate
    return result


def dockerignore(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_copies_what_exists_and_is_not_ignored(service):
    text = dockerfile(service)
    patterns = dockerignore(ROOT / "services" / service / "Dockerfile.dockerignore")
    sources = [
        src
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for src in line.split()[1:-1]
    ]
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"{service}: COPY {source} does not exist"
        if path.is_file():
            needed = [path]
        else:  # a package directory: its metadata and sources must get through, tests must not
            needed = [
                path / "pyproject.toml",
                *(
                    p
                    for p in (path / "src").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts
                ),
            ]
            for extra in (path / "tests", path / "Dockerfile"):
                if extra.exists():
                    assert ignored(extra.relative_to(ROOT).as_posix(), patterns), (
                        f"{extra} is sent to the build"
                    )
        for file in needed:
            rel = file.relative_to(ROOT).as_posix()
            assert not ignored(rel, patterns), (
                f"{service}: {rel} is needed but .dockerignore drops it"
            )


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_matches_the_chart(service, rendered_default):
    text = dockerfile(service)
    base = re.search(r"^ARG PYTHON_IMAGE=python:(\d+)\.(\d+)\.(\d+)-slim-\w+$", text, re.M)
    assert base, "the base image is python:<full version>-slim-<debian release>"
    assert (int(base[1]), int(base[2])) == sys.version_info[:2], (
        "the image's Python is not the tests' Python"
    )
    assert text.count("FROM ${PYTHON_IMAGE}") == 2, "multi-stage: a build and a runtime stage"
    runtime = text.split("AS runtime", 1)[1]
    assert "gcc" not in runtime and "build-essential" not in runtime
    user = re.search(r"^USER (\d+):(\d+)$", runtime, re.M)
    assert user and int(user[1]) == VALUES["podSecurityContext"]["runAsUser"]
    entrypoint = re.search(r'^ENTRYPOINT \["python", "-m", "([\w.]+)"\]$', runtime, re.M)
    container = rendered_default.get("Deployment", f"perflab-{service}")["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert entrypoint and container["command"] == ["python", "-m", entrypoint[1]]
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", runtime, re.M)[1].split()}
    assert exposed == {p["containerPort"] for p in container["ports"]}
    deps_layer, code_layer = (
        text.index("pip install -r requirements.txt"),
        text.index(f"COPY services/{service}/ "),
    )
    assert deps_layer < code_layer, (
        "dependencies must be installed before the code is copied (layer cache)"
    )


def test_the_four_dockerfiles_differ_only_in_the_service():
    def normalized(service: str) -> str:
        return re.sub(
            r"^EXPOSE .*$", "EXPOSE", dockerfile(service).replace(service, "SERVICE"), flags=re.M
        )

    assert len({normalized(s) for s in SERVICES}) == 1


def test_wheels_contain_the_entrypoints_and_migrations(tmp_path):
    """What the Dockerfiles install: `pip wheel` of perflab-common and each service."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            *(str(ROOT / "services" / s) for s in ("common", *SERVICES)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**__import__("os").environ, "PIP_CONSTRAINT": str(ROOT / "constraints.txt")},
    )
    assert result.returncode == 0, result.stderr
    names = set()
    for wheel in tmp_path.glob("*.whl"):
        names |= set(zipfile.ZipFile(wheel).namelist())
    for service in SERVICES:
        assert f"perflab/{service}/__main__.py" in names
    for module in (
        "perflab/orders/migrate.py",
        "perflab/payments/migrate.py",
        "perflab/orders/seed.py",
        "perflab/common/kafka_admin.py",
        "perflab/orders/migrations/env.py",
        "perflab/payments/migrations/env.py",
    ):
        assert module in names, module
    assert any(n.startswith("perflab/contracts/orders/v1/") for n in names)
    assert "perflab/__init__.py" not in names, "perflab is a namespace package"


def test_skaffold_builds_exactly_the_images_the_chart_deploys():
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {VALUES["services"][s]["image"]["repository"] for s in SERVICES}
    assert config["build"]["local"]["push"] is False
    release = config["deploy"]["helm"]["releases"][0]
    assert (ROOT / release["chartPath"]).resolve() == CHART
    templates = release["setValueTemplates"]
    for service in SERVICES:
        image = VALUES["services"][service]["image"]["repository"]
        artifact = artifacts[image]
        assert (
            ROOT / artifact["context"] / artifact["docker"]["dockerfile"]
        ) == ROOT / "services" / service / "Dockerfile"
        key = re.sub(r"[/\-.:]", "_", image)
        assert templates[f"services.{service}.image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
        assert templates[f"services.{service}.image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"
    assert config["deploy"]["kubeContext"] == "kind-perflab"
    assert "ci" in {p["name"] for p in config["profiles"]}


def test_kind_maps_every_node_port_the_charts_open():
    cluster = yaml.safe_load((ROOT / "deploy/kind/cluster.yaml").read_text())
    node = cluster["nodes"][0]
    assert node["image"].startswith("kindest/node:v1.37.0@sha256:")
    mapped = {m["containerPort"]: m["hostPort"] for m in node["extraPortMappings"]}
    expected = {
        VALUES["services"]["gateway"]["service"]["nodePorts"]["http"]: 8080,
        VALUES["jaeger"]["service"]["queryNodePort"]: 16686,
        VALUES["locust"]["service"]["webNodePort"]: 8089,
        KPS["grafana"]["service"]["nodePort"]: 3000,
        KPS["prometheus"]["service"]["nodePort"]: 9090,
    }
    assert mapped == expected
    assert cluster["name"] == "perflab"
    # The smoke script's defaults are these URLs.
    smoke = (ROOT / "deploy/scripts/smoke.py").read_text()
    for url in ("http://localhost:8080", "http://localhost:9090", "http://localhost:16686"):
        assert url in smoke


def test_grafana_and_prometheus_are_wired_to_the_release(rendered_default):
    jaeger = next(d for d in KPS["grafana"]["additionalDataSources"] if d["type"] == "jaeger")
    query = next(
        p
        for p in rendered_default.get("Service", "perflab-jaeger")["spec"]["ports"]
        if p["name"] == "query"
    )
    assert jaeger["url"] == f"http://perflab-jaeger.perflab.svc:{query['port']}"
    exemplars = KPS["grafana"]["sidecar"]["datasources"]["exemplarTraceIdDestinations"]
    assert exemplars["datasourceUid"] == jaeger["uid"]
    assert exemplars["traceIdLabelName"] == "trace_id"  # perflab.common.metrics' exemplar label
    assert "exemplar-storage" in KPS["prometheus"]["prometheusSpec"]["enableFeatures"]
    dashboards = KPS["grafana"]["sidecar"]["dashboards"]
    assert (dashboards["label"], dashboards["labelValue"]) == (
        VALUES["dashboards"]["label"],
        VALUES["dashboards"]["labelValue"],
    )
    assert KPS["prometheus"]["prometheusSpec"]["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert KPS["prometheus"]["prometheusSpec"]["ruleSelectorNilUsesHelmValues"] is False
    # The NetworkPolicies admit Prometheus from the namespace up.sh installs it in.
    up = (ROOT / "deploy/scripts/up.sh").read_text()
    namespace = re.search(r"^monitoring=(\S+)$", up, re.M)[1]
    assert VALUES["networkPolicy"]["prometheus"]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": namespace
    }
    assert re.search(r"^release=perflab$", up, re.M) and "NAMESPACE:-perflab" in up


def test_chart_versions_in_up_match_the_values_files():
    up = (ROOT / "deploy/scripts/up.sh").read_text()
    kps_version = re.search(r"KPS_CHART_VERSION:-([\d.]+)", up)[1]
    ms_version = re.search(r"METRICS_SERVER_CHART_VERSION:-([\d.]+)", up)[1]
    assert (
        f"kube-prometheus-stack (chart {kps_version}"
        in (ROOT / "deploy/monitoring/kube-prometheus-stack.values.yaml").read_text()
    )
    assert (
        f"metrics-server (chart {ms_version}"
        in (ROOT / "deploy/monitoring/metrics-server.values.yaml").read_text()
    )
    crds = (ROOT / "deploy/scripts/fetch-crds.sh").read_text()
    assert f"kube-prometheus-stack {kps_version}" in crds
