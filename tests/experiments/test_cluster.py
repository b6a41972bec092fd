"""`--target kind` with a fake kubectl (no cluster here): what the experiment changes on the
release is exactly what it puts back, even when the run fails half-way."""

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from experiments import cluster, framework
from experiments.framework import Arm, Experiment, LoadProfile

FAKE = """
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
rest = args[4:]  # after --context C --namespace N
if rest[:2] == ["get", "deployment"] and rest[-1] == "json":
    service = rest[2].removeprefix("perflab-")
    env = [{"name": "DB_POOL_SIZE", "value": "10"}, {"name": "X", "valueFrom": {}}]
    print(json.dumps({"spec": {"template": {"spec": {"containers": [
        {"name": service, "env": env}]}}}}))
elif rest[:2] == ["get", "hpa"]:
    print(json.dumps({"spec": {"minReplicas": 1, "maxReplicas": 4}}))
elif rest[:2] == ["get", "deployment"]:
    print("1")
"""


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "kubectl"
    script.write_text(f"#!{sys.executable}\n{FAKE}")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls.jsonl"
    log.touch()
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    monkeypatch.setenv("KUBECTL", str(script))
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line)[4:] for line in log.read_text().splitlines()]


def experiment(**overrides: Any) -> Experiment:
    fields: dict[str, Any] = {
        "name": "t",
        "title": "t",
        "question": "q",
        "hypothesis": "h",
        "change": "c",
        "arms": [Arm("A", "a"), Arm("B", "b")],
        "load": LoadProfile(journeys={"product": 1}),
        "services": ("orders", "gateway"),
        "targets": ("local", "kind"),
    }
    return Experiment(**(fields | overrides))


def test_env_changes_are_rolled_out_and_put_back(kubectl: Path, tmp_path: Path) -> None:
    with cluster.cluster_context(experiment(), quick=True, out=tmp_path) as ctx:
        assert ctx.apply_env({"orders": {"DB_POOL_SIZE": "1", "PAYMENT_MODE": "sync"}}) == [
            "orders"
        ]
        assert ctx.apply_env({"orders": {"DB_POOL_SIZE": "1", "PAYMENT_MODE": "sync"}}) == []
        assert ctx.apply_env({"orders": {"DB_POOL_SIZE": "100"}}) == ["orders"]
    sets = [c for c in calls(kubectl) if c[:2] == ["set", "env"]]
    assert sets == [
        [
            "set",
            "env",
            "deployment/perflab-orders",
            "-c",
            "orders",
            "DB_POOL_SIZE=1",
            "PAYMENT_MODE=sync",
        ],
        # PAYMENT_MODE was not in the deployment's own env: removed, so the ConfigMap's applies
        [
            "set",
            "env",
            "deployment/perflab-orders",
            "-c",
            "orders",
            "DB_POOL_SIZE=100",
            "PAYMENT_MODE-",
        ],
        # the end: the chart's value back
        ["set", "env", "deployment/perflab-orders", "-c", "orders", "DB_POOL_SIZE=10"],
    ]
    rollouts = [c for c in calls(kubectl) if c[0] == "rollout"]
    assert len(rollouts) == 3 and rollouts[0][2] == "deployment/perflab-orders"


def test_replicas_are_pinned_and_everything_restored_even_after_a_failure(
    kubectl: Path, tmp_path: Path
) -> None:
    with (
        pytest.raises(RuntimeError, match="half-way"),
        cluster.cluster_context(experiment(), quick=True, out=tmp_path) as ctx,
    ):
        ctx.set_fault("db_slow_ms", 20)
        raise RuntimeError("the run failed half-way")
    made = calls(kubectl)
    patches = [c for c in made if c[:2] == ["patch", "hpa"]]
    pins = [json.loads(c[-1])["spec"] for c in patches]
    assert [c[2] for c in patches] == ["perflab-orders", "perflab-gateway"] * 2
    assert (
        pins
        == [{"minReplicas": 1, "maxReplicas": 1}] * 2 + [{"minReplicas": 1, "maxReplicas": 4}] * 2
    )
    gateway_exec = ["exec", "deploy/perflab-gateway", "-c", "gateway", "--", "python", "-m"]
    assert made[-1] == [*gateway_exec, "perflab.common.faults", "reset"]
    assert [*gateway_exec, "perflab.common.faults", "set", "db_slow_ms", "20"] in made


def test_the_autoscaling_experiment_does_not_pin_and_skips_locally() -> None:
    autoscaling = framework.load("autoscaling")
    assert not autoscaling.pin_replicas
    assert "kind cluster" in (autoscaling.why_not("local") or "")
    assert autoscaling.why_not("kind") is None
    assert "never on the lab's own database" in (framework.load("db-index").why_not("kind") or "")


def test_an_unreachable_cluster_is_one_clear_sentence(tmp_path: Path) -> None:
    os.environ.pop("FAKE_KUBECTL_LOG", None)
    missing = tmp_path / "no-kubectl"
    with (
        pytest.MonkeyPatch.context() as mp,
        pytest.raises(SystemExit, match="make up"),
    ):
        mp.setenv("KUBECTL", str(missing))
        with cluster.cluster_context(experiment(), quick=True, out=tmp_path):
            pass
