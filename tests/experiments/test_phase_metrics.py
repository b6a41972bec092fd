"""A phase's figures from its snapshots: counters as Prometheus' increase() reads them, gauges
over the samples that have them."""

import math

import pytest

from experiments import phase_metrics


def test_a_counter_that_restarts_or_appears_mid_phase_counts_as_prometheus_increase_does() -> None:
    """The autoscaling experiment's gateway CPU went negative when a pod was replaced."""

    def snapshot(t: float, **pods: float) -> phase_metrics.Snapshot:
        samples = {
            ("process_cpu_seconds_total", frozenset({("pod", pod)})): cpu
            for pod, cpu in pods.items()
        }
        return phase_metrics.Snapshot(t, {"gateway": samples})

    # a: grew 3 s; b: restarted and is at 2 s; c: new, 1 s; d: gone (its last 5 s unknown)
    phase = phase_metrics.PhaseMetrics(
        before=snapshot(0, a=10, b=50, d=5), after=snapshot(10, a=13, b=2, c=1)
    )
    assert phase.delta("gateway", "process_cpu_seconds_total") == 6
    assert phase.rate("gateway", "process_cpu_seconds_total") == pytest.approx(0.6)
    assert phase.delta("gateway", "process_cpu_seconds_total", pod="a") == 3


def test_a_gauge_not_yet_scraped_is_left_out_not_read_as_zero() -> None:
    def snapshot(t: float, replicas: float | None) -> phase_metrics.Snapshot:
        key = ("kube_deployment_status_replicas_ready", frozenset({("deployment", "gw")}))
        return phase_metrics.Snapshot(t, {"kube": {} if replicas is None else {key: replicas}})

    phase = phase_metrics.PhaseMetrics(
        before=snapshot(0, None),
        after=snapshot(4, 3),
        series=[snapshot(1, None), snapshot(2, 1), snapshot(3, 3)],
    )
    name = "kube_deployment_status_replicas_ready"
    assert phase.gauge("kube", name, deployment="gw") == 2
    assert phase.gauge("kube", name, "max", deployment="gw") == 3
    assert math.isnan(phase.gauge("kube", "absent"))


def test_a_restart_seen_in_the_phase_samples_keeps_the_cpu_used_before_it() -> None:
    def snapshot(t: float, cpu: float) -> phase_metrics.Snapshot:
        key = ("process_cpu_seconds_total", frozenset({("pod", "gw-1")}))
        return phase_metrics.Snapshot(t, {"gateway": {key: cpu}})

    # 10 -> 14 (4 s), restart, 1 -> 3 (3 s since the restart)
    phase = phase_metrics.PhaseMetrics(
        before=snapshot(0, 10), after=snapshot(3, 3), series=[snapshot(1, 14), snapshot(2, 1)]
    )
    assert phase.delta("gateway", "process_cpu_seconds_total") == 7
