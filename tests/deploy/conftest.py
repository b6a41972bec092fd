"""Fixtures for the deployment tests: the chart rendered by a pinned Helm, Kubernetes schemas
(kubernetes-validate) and the Prometheus Operator's CRDs. Nothing here needs Docker or a
cluster; Helm and the CRDs are installed by deploy/scripts and cached outside the clone."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from perflab.dev.processes import SERVICES

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "perflab"
RELEASE = "perflab"
NAMESPACE = "perflab"
# The Kubernetes version of kind's node image (deploy/kind/cluster.yaml).
KUBE_VERSION = "1.37.0"


def makefile_var(name: str) -> str:
    match = re.search(rf"^{name} \?= (\S+)$", (ROOT / "deploy" / "cluster.mk").read_text(), re.M)
    assert match, f"{name} not pinned in deploy/cluster.mk"
    return match.group(1)


@dataclass
class Rendered:
    docs: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
        return found[0]

    def workloads(self) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] in ("Deployment", "StatefulSet", "Job")]


class Helm:
    def __init__(self, binary: str) -> None:
        self.binary = binary

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, *args], capture_output=True, text=True, check=False)

    def template_args(self, values: list[Path | str], sets: list[str], release: str) -> list[str]:
        args = [
            "template",
            release,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
        ]
        for v in values:
            args += ["--values", str(v)]
        for s in sets:
            args += ["--set", s]
        return args

    def render(
        self, values: list[Path | str] = (), sets: list[str] = (), release: str = RELEASE
    ) -> Rendered:
        result = self.run(*self.template_args(list(values), list(sets), release))
        assert result.returncode == 0, result.stderr
        return Rendered([d for d in yaml.safe_load_all(result.stdout) if d])

    def render_error(self, values: list[Path | str] = (), sets: list[str] = ()) -> str:
        """Renders expecting failure; returns Helm's error output."""
        result = self.run(*self.template_args(list(values), list(sets), RELEASE))
        assert result.returncode != 0, "rendering was expected to fail"
        return result.stderr


@pytest.fixture(scope="session")
def helm() -> Helm:
    version = makefile_var("HELM_VERSION")
    result = subprocess.run(
        [str(ROOT / "deploy/scripts/install-tool.sh"), "helm", version],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert result.returncode == 0, f"installing helm {version} failed:\n{result.stderr}"
    return Helm(result.stdout.strip())


SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))


@pytest.fixture(scope="session")
def rendered_default(helm: Helm) -> Rendered:
    return helm.render()


@pytest.fixture(scope="session")
def rendered_scenarios(helm: Helm) -> dict[str, Rendered]:
    """Default values plus each deploy/helm/perflab/ci/*-values.yaml scenario."""
    out = {"default": helm.render()}
    for path in SCENARIOS:
        out[path.name] = helm.render([path])
    return out


@pytest.fixture(scope="session")
def crd_dir() -> Path:
    result = subprocess.run(
        [str(ROOT / "deploy/scripts/fetch-crds.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        pytest.fail(f"fetching the Prometheus Operator CRDs failed:\n{result.stderr}")
    return Path(result.stdout.strip())


def containers(workload: dict[str, Any], init: bool = False) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return list(spec.get("containers", [])) + (list(spec.get("initContainers", [])) if init else [])


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity as a number (CPU in cores, memory in bytes)."""
    text = str(value)
    suffixes = {
        "m": 1e-3,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
    }
    for suffix, factor in sorted(suffixes.items(), key=lambda kv: -len(kv[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


@pytest.fixture(scope="session")
def lib() -> SimpleNamespace:
    """Constants and helpers for the test modules (conftest is not importable under
    --import-mode=importlib)."""
    return SimpleNamespace(
        ROOT=ROOT,
        CHART=CHART,
        RELEASE=RELEASE,
        NAMESPACE=NAMESPACE,
        KUBE_VERSION=KUBE_VERSION,
        SERVICES=SERVICES,
        containers=containers,
        quantity=quantity,
        makefile_var=makefile_var,
    )
