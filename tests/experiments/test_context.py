"""PostgreSQL's CPU as a counter that never goes down when backends exit (fake process
table)."""

import math
from types import SimpleNamespace
from typing import Any

import pytest

from experiments import context


def table(*procs: tuple[int, str, float]) -> list[Any]:
    return [
        SimpleNamespace(
            pid=pid, info={"name": name, "cpu_times": SimpleNamespace(user=cpu, system=0.0)}
        )
        for pid, name, cpu in procs
    ]


def test_exiting_backends_do_not_make_the_cpu_counter_go_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    samples = iter(
        [
            table((1, "postgres", 10.0), (2, "postgres", 5.0), (9, "python", 99.0)),
            table((1, "postgres", 10.5), (2, "postgres", 6.0), (3, "postgres", 0.25)),
            table((1, "postgres", 11.0)),  # 2 and 3 exited, taking 6.25 s with them
            table((1, "postgres", 11.0), (4, "postmaster", 0.5)),
        ]
    )
    monkeypatch.setattr(context.psutil, "process_iter", lambda attrs: next(samples))
    cpu = context.PostgresCpu()
    assert cpu.sample() == 0.0  # the zero point
    assert cpu.sample() == pytest.approx(0.5 + 1.0 + 0.25)
    assert cpu.sample() == pytest.approx(1.75 + 0.5)
    assert cpu.sample() == pytest.approx(2.25 + 0.5)  # a new process counts from zero


def test_a_counter_that_restarts_or_appears_mid_phase_counts_as_prometheus_increase_does() -> None:
    """The autoscaling experiment's gateway CPU went negative when a pod was replaced."""

    def snapshot(t: float, **pods: float) -> context.Snapshot:
        samples = {
            ("process_cpu_seconds_total", frozenset({("pod", pod)})): cpu
            for pod, cpu in pods.items()
        }
        return context.Snapshot(t, {"gateway": samples})

    # a: grew 3 s; b: restarted and is at 2 s; c: new, 1 s; d: gone (its last 5 s unknown)
    phase = context.PhaseMetrics(
        before=snapshot(0, a=10, b=50, d=5), after=snapshot(10, a=13, b=2, c=1)
    )
    assert phase.delta("gateway", "process_cpu_seconds_total") == 6
    assert phase.rate("gateway", "process_cpu_seconds_total") == pytest.approx(0.6)
    assert phase.delta("gateway", "process_cpu_seconds_total", pod="a") == 3


def test_a_gauge_not_yet_scraped_is_left_out_not_read_as_zero() -> None:
    def snapshot(t: float, replicas: float | None) -> context.Snapshot:
        key = ("kube_deployment_status_replicas_ready", frozenset({("deployment", "gw")}))
        return context.Snapshot(t, {"kube": {} if replicas is None else {key: replicas}})

    phase = context.PhaseMetrics(
        before=snapshot(0, None),
        after=snapshot(4, 3),
        series=[snapshot(1, None), snapshot(2, 1), snapshot(3, 3)],
    )
    name = "kube_deployment_status_replicas_ready"
    assert phase.gauge("kube", name, deployment="gw") == 2
    assert phase.gauge("kube", name, "max", deployment="gw") == 3
    assert math.isnan(phase.gauge("kube", "absent"))


def test_a_restart_seen_in_the_phase_samples_keeps_the_cpu_used_before_it() -> None:
    def snapshot(t: float, cpu: float) -> context.Snapshot:
        key = ("process_cpu_seconds_total", frozenset({("pod", "gw-1")}))
        return context.Snapshot(t, {"gateway": {key: cpu}})

    # 10 -> 14 (4 s), restart, 1 -> 3 (3 s since the restart)
    phase = context.PhaseMetrics(
        before=snapshot(0, 10), after=snapshot(3, 3), series=[snapshot(1, 14), snapshot(2, 1)]
    )
    assert phase.delta("gateway", "process_cpu_seconds_total") == 7
