"""`make profile TARGET=kind` (scripts/flamegraph.py) without a cluster: the pod it picks from
`kubectl get pods -o json`, the `kubectl debug` it runs, the file it fetches, what it says
when something is missing (a fake kubectl plays the cluster), the process search its debug
container runs (on this host's /proc), and the image `make up` builds for it."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from scripts import flamegraph

ROOT = Path(__file__).resolve().parents[2]
SVG = "<svg><g><title>get_product (perflab/gateway/api.py:42) (7 samples, 5%)</title></g></svg>"

# The cluster, as far as `profile_on_cluster` asks it. FAKE_KUBECTL_MODE picks what goes wrong.
FAKE = r"""
import json, os, sys
from pathlib import Path

state = Path(os.environ["FAKE_KUBECTL_DIR"])
mode = os.environ.get("FAKE_KUBECTL_MODE", "ok")
pods = json.loads(os.environ["FAKE_PODS"])
rest = sys.argv[5:]  # after --context C --namespace N
entry = {"global": sys.argv[1:5], "args": rest}
if rest[:1] == ["debug"]:
    entry["custom"] = json.loads(Path(rest[rest.index("--custom") + 1]).read_text())
    (state / "container").write_text(rest[rest.index("--container") + 1])
with (state / "calls.jsonl").open("a") as log:
    log.write(json.dumps(entry) + "\n")


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


STATES = {
    "ok": [{"waiting": {"reason": "ContainerCreating"}}, {"running": {}},
           {"terminated": {"exitCode": 0, "reason": "Completed"}}],
    "image-missing": [{"waiting": {"reason": "ErrImageNeverPull", "message": "not present"}}],
    "no-process": [{"terminated": {"exitCode": 3, "reason": "Error"}}],
    "py-spy-fails": [{"terminated": {"exitCode": 1, "reason": "Error"}}],
}
LOGS = {
    "no-process": "no process of perflab.gateway in the target container's process namespace",
    "py-spy-fails": "Error: Failed to find python version from target process",
}
if mode == "unreachable":
    fail("The connection to the server 127.0.0.1:6443 was refused - did you specify the right "
         "host or port?")
if rest[:2] == ["get", "pods"]:
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}))
elif rest[:2] == ["get", "pod"]:
    found = [p for p in pods if p["metadata"]["name"] == rest[2]]
    if not found:
        fail(f'Error from server (NotFound): pods "{rest[2]}" not found')
    pod = found[0]
    if (state / "container").exists():
        polls = state / "polls"
        n = int(polls.read_text()) if polls.exists() else 0
        polls.write_text(str(n + 1))
        states = STATES[mode]
        pod["status"]["ephemeralContainerStatuses"] = [
            {"name": (state / "container").read_text(), "state": states[min(n, len(states) - 1)]}
        ]
    print(json.dumps(pod))
elif rest[:1] == ["debug"]:
    if mode == "podsecurity":
        fail('Error from server (Forbidden): pods "x" is forbidden: violates PodSecurity '
             '"baseline:latest": non-default capabilities (container "profiler" must not '
             'include "SYS_PTRACE" in securityContext.capabilities.add)')
elif rest[:1] == ["logs"]:
    print(LOGS.get(mode, ""))
elif rest[:1] == ["exec"] and "cat" in rest:
    sys.stdout.write(os.environ["FAKE_SVG"])
elif rest[:1] != ["exec"]:
    fail(f"unexpected kubectl call: {rest}")
"""


def pod(
    name: str, created: str, ready: bool = True, phase: str = "Running", deleting: bool = False
) -> dict[str, Any]:
    """One item of `kubectl get pods -o json`, as the chart's Deployment makes it."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "perflab",
        "creationTimestamp": created,
        "labels": {"app.kubernetes.io/component": "gateway"},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-01T02:00:00Z"
    return {
        "metadata": metadata,
        "spec": {
            "containers": [
                {
                    "name": "gateway",
                    "command": ["python", "-m", "perflab.gateway"],
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        },
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
        },
    }


PODS = [
    pod("perflab-gateway-7d9f-new", "2026-12-01T01:30:00Z"),
    pod("perflab-gateway-7d9f-starting", "2026-12-01T01:40:00Z", ready=False),
    pod("perflab-gateway-7d9f-old", "2026-12-01T01:00:00Z"),
    pod("perflab-gateway-5c4b-leaving", "2026-12-01T00:00:00Z", deleting=True),
]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake kubectl; returns the folder holding its call log."""
    script = tmp_path / "kubectl"
    script.write_text(f"#!{sys.executable}\n{FAKE}")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("FAKE_KUBECTL_DIR", str(state))
    monkeypatch.setenv("FAKE_PODS", json.dumps(PODS))
    monkeypatch.setenv("FAKE_SVG", SVG)
    return state


def calls(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]


def profile(
    tmp_path: Path, pod_name: str | None = None, kubectl: str | None = None
) -> tuple[Path, Path]:
    kube = flamegraph.Kube(kubectl or str(tmp_path / "kubectl"), "kind-perflab", "perflab")
    out = tmp_path / "results" / "gateway.svg"
    return flamegraph.profile_on_cluster(kube, "gateway", 5, out, pod_name=pod_name, every=0), out


def test_picks_the_oldest_ready_pod_that_is_not_leaving() -> None:
    chosen = flamegraph.pick_pod(PODS, "gateway", "perflab")
    assert chosen["metadata"]["name"] == "perflab-gateway-7d9f-old"


def test_says_which_pods_there_are_when_none_is_ready() -> None:
    with pytest.raises(SystemExit, match="no ready pod of perflab-gateway") as exit_:
        flamegraph.pick_pod([pod("p-1", "2026-12-01T01:00:00Z", False, "Pending")], "gateway", "ns")
    assert "p-1 (Pending)" in str(exit_.value)
    with pytest.raises(SystemExit, match=r"no pod of perflab-gateway in namespace ns.*make up"):
        flamegraph.pick_pod([], "gateway", "ns")


def test_every_service_has_the_tmp_volume_the_profile_is_handed_over_in(rendered_default) -> None:
    for service in flamegraph.SERVICES:
        template = rendered_default.get("Deployment", f"perflab-{service}")["spec"]["template"]
        assert flamegraph.tmp_volume({**template, "metadata": {"name": "p"}}, service) == "tmp"
    bare = pod("p", "2026-12-01T01:00:00Z")
    bare["spec"]["containers"][0]["volumeMounts"] = []
    with pytest.raises(SystemExit, match="no volume at /tmp"):
        flamegraph.tmp_volume(bare, "gateway")
    with pytest.raises(SystemExit, match="pod p has no container orders"):
        flamegraph.tmp_volume(bare, "orders")


def test_the_debug_command_line() -> None:
    command = flamegraph.debug_command(
        "perflab-gateway-1", "gateway", "profiler-1", "/tmp/custom.json", ["--duration", "5"]
    )
    dash = command.index("--")
    assert command[:3] == ["debug", "perflab-gateway-1", "--quiet"]
    flags = command[3:dash]
    assert dict(zip(flags[::2], flags[1::2], strict=True)) == {
        "--image": flamegraph.profiler_image(),
        "--image-pull-policy": "Never",  # the host cluster has no registry; kind has it loaded
        "--container": "profiler-1",
        "--target": "gateway",  # the service container's process namespace
        "--profile": "general",  # adds SYS_PTRACE, nothing more
        "--custom": "/tmp/custom.json",
    }
    assert command[dash + 1 :] == [
        "sh", "-c", flamegraph.FIND_AND_RECORD, "perflab-profile", "perflab.gateway",
        "--duration", "5",
    ]  # fmt: skip


def test_records_in_the_pod_and_fetches_the_profile(fake: Path, tmp_path: Path) -> None:
    written, out = profile(tmp_path)
    assert written == out and out.read_text() == SVG
    log = calls(fake)
    assert all(c["global"] == ["--context", "kind-perflab", "--namespace", "perflab"] for c in log)
    verbs = [" ".join(c["args"][:2]) for c in log]
    assert verbs == [
        "get pods", "debug perflab-gateway-7d9f-old",
        "get pod", "get pod", "get pod",  # waiting, running, terminated
        "exec perflab-gateway-7d9f-old", "exec perflab-gateway-7d9f-old",
    ]  # fmt: skip
    assert log[0]["args"] == [
        "get", "pods", "--selector",
        "app.kubernetes.io/instance=perflab,app.kubernetes.io/component=gateway", "-o", "json",
    ]  # fmt: skip
    debug = log[1]
    assert debug["custom"] == {
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
        "volumeMounts": [{"name": "tmp", "mountPath": "/profiles"}],
    }
    container = debug["args"][debug["args"].index("--container") + 1]
    assert re.fullmatch(r"profiler-\d{6}-[0-9a-f]{4}", container)
    record = debug["args"][debug["args"].index("perflab.gateway") + 1 :]
    assert record == [
        "--duration", "5", "--rate", "100", "--nonblocking", "--format", "flamegraph",
        "--output", f"/profiles/{container}.svg",
    ]  # fmt: skip
    # The file py-spy wrote into the shared volume, read and removed through the service's
    # container (where that volume is /tmp).
    assert log[5]["args"][2:] == ["--container", "gateway", "--", "cat", f"/tmp/{container}.svg"]
    assert log[6]["args"][2:] == [
        "--container",
        "gateway",
        "--",
        "rm",
        "-f",
        f"/tmp/{container}.svg",
    ]


def test_profiles_the_pod_it_is_given(fake: Path, tmp_path: Path) -> None:
    profile(tmp_path, pod_name="perflab-gateway-7d9f-new")
    log = calls(fake)
    assert log[0]["args"] == ["get", "pod", "perflab-gateway-7d9f-new", "-o", "json"]
    assert log[1]["args"][:2] == ["debug", "perflab-gateway-7d9f-new"]
    with pytest.raises(SystemExit, match="no pod perflab-gateway-gone in namespace perflab"):
        profile(tmp_path, pod_name="perflab-gateway-gone")


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("unreachable", r"the cluster did not answer .*was refused.*is it up\? `make up`"),
        (
            "podsecurity",
            r"(?s)enforces a PodSecurity level .*pod-security.kubernetes.io/enforce=privileged",
        ),
        (
            "image-missing",
            r"profiler image perflab/profiler:py-spy-\S+ is not on the cluster's node "
            r"\(ErrImageNeverPull\): `make up` builds and loads it",
        ),
        ("no-process", r"no perflab.gateway process visible .*support kubectl debug --target"),
        (
            "py-spy-fails",
            r"py-spy failed in pod perflab-gateway-7d9f-old \(exit 1, Error\): "
            r"Error: Failed to find python version",
        ),
    ],
)
def test_says_what_went_wrong(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, message: str
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_MODE", mode)
    with pytest.raises(SystemExit, match=message):
        profile(tmp_path)
    assert not (tmp_path / "results").exists()


def test_says_so_when_there_is_no_kubectl(tmp_path: Path) -> None:
    with pytest.raises(
        SystemExit, match=r"no kubectl at /nonexistent/kubectl: the cluster is not up"
    ):
        profile(tmp_path, kubectl="/nonexistent/kubectl")


@pytest.fixture
def fake_py_spy(tmp_path: Path) -> dict[str, str]:
    """A PATH whose py-spy prints its arguments."""
    script = tmp_path / "bin" / "py-spy"
    script.parent.mkdir()
    script.write_text('#!/bin/sh\necho "$@"\n')
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{script.parent}:{os.environ['PATH']}"}


def test_the_debug_container_finds_the_service_by_its_module(fake_py_spy: dict[str, str]) -> None:
    """FIND_AND_RECORD on this host's /proc: the lowest pid whose argv holds the module as a
    whole word, not one that merely contains it, and not pid 1 by assumption."""
    module = f"perflab.probe{uuid.uuid4().hex[:8]}"
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    decoy = subprocess.Popen([*sleep, f"{module}x"])  # started first: the lowest pid
    services = [subprocess.Popen([*sleep, module]) for _ in range(2)]
    try:
        result = subprocess.run(
            ["sh", "-c", flamegraph.FIND_AND_RECORD, "perflab-profile", module, "--duration", "5"],
            env=fake_py_spy, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        for process in (decoy, *services):
            process.kill()
            process.wait()
    assert result.returncode == 0, result.stderr
    lowest = min(p.pid for p in services)
    assert result.stdout.split() == ["record", "--pid", str(lowest), "--duration", "5"]


def test_the_debug_container_says_so_when_the_service_is_not_there(
    fake_py_spy: dict[str, str],
) -> None:
    # The shell's own argv holds the module too: it must not profile itself.
    module = f"perflab.absent{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        ["sh", "-c", flamegraph.FIND_AND_RECORD, "perflab-profile", module],
        env=fake_py_spy, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == flamegraph.NO_PROCESS
    assert result.stdout == ""
    assert f"no process of {module}" in result.stderr


def test_the_profiler_image_is_the_one_make_up_builds() -> None:
    pin = re.search(r"^py-spy==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    assert pin and flamegraph.profiler_image() == f"perflab/profiler:py-spy-{pin[1]}"
    up = (ROOT / "deploy/scripts/up.sh").read_text()
    assert "profiler=perflab/profiler:py-spy-${pyspy" in up
    assert "sed -n 's/^py-spy==//p' constraints.txt" in up
    assert '--file deploy/docker/profiler.Dockerfile --tag "$profiler"' in up
    dockerfile = (ROOT / "deploy/docker/profiler.Dockerfile").read_text()
    service = (ROOT / "services/gateway/Dockerfile").read_text()
    base = re.compile(r"^ARG PYTHON_IMAGE=.*$", re.M)
    assert base.findall(dockerfile) == base.findall(service), "the services' base: shared layers"
    assert (
        "COPY constraints.txt" in dockerfile and "PIP_CONSTRAINT=/src/constraints.txt" in dockerfile
    )
    ignore = (ROOT / "deploy/docker/profiler.Dockerfile.dockerignore").read_text().splitlines()
    assert [p for p in ignore if p and not p.startswith("#")] == ["*", "!constraints.txt"]
