"""The experiments that run on kind against the chart they run on: every variable an arm sets
is a setting of that service, every fault exists, and the deployments, containers and HPAs
experiments/cluster.py addresses by name are the ones the chart renders."""

from __future__ import annotations

import importlib

import pytest

from experiments import cluster, framework
from perflab.common.faults import FAULTS

KIND = [n for n in framework.names() if "kind" in framework.load(n).targets]


def test_most_experiments_run_on_kind() -> None:
    assert {"autoscaling", "cache-impact", "queue-impact", "write-load"} <= set(KIND)


@pytest.mark.parametrize("name", KIND)
def test_every_variable_and_fault_an_experiment_sets_exists(name: str) -> None:
    experiment = framework.load(name)
    envs = [experiment.base_env, *(arm.env for arm in experiment.arms)]
    for env in envs:
        for service, variables in env.items():
            settings = importlib.import_module(f"perflab.{service}.settings").Settings
            fields = {f.upper() for f in settings.model_fields}
            unknown = {v for v in variables if v.upper() not in fields}
            assert not unknown, f"{name}: {service} has no setting {unknown}"
    faults = set(experiment.base_faults) | {f for arm in experiment.arms for f in arm.faults}
    assert faults <= set(FAULTS), faults - set(FAULTS)


@pytest.mark.parametrize("name", KIND)
def test_the_objects_the_cluster_target_addresses_are_rendered(
    name: str, rendered_default, lib
) -> None:
    experiment = framework.load(name)
    assert lib.RELEASE == cluster.RELEASE
    for service in {*experiment.services, "gateway", "orders"}:  # exec targets included
        deployment = rendered_default.get("Deployment", f"{cluster.RELEASE}-{service}")
        names = [c["name"] for c in lib.containers(deployment)]
        assert service in names, names
        rendered_default.get("HorizontalPodAutoscaler", f"{cluster.RELEASE}-{service}")


def test_the_scrape_interval_the_cluster_target_waits_for_is_the_charts(lib) -> None:
    import yaml

    values = yaml.safe_load((lib.CHART / "values.yaml").read_text())
    assert values["serviceMonitor"]["interval"] == f"{cluster.SCRAPE_INTERVAL_S}s"
