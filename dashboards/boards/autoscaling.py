"""The Autoscaling dashboard: the HPAs at work during a load test: desired and current
replicas, CPU against target, scale events, pod readiness (cluster only)."""

from __future__ import annotations

from dashboards.boards.shared import lab_dashboard
from dashboards.grafana import (
    Dashboard,
    Row,
    target,
    timeseries,
)
from dashboards.promql import (
    CPU,
    JOBS,
    RI,
    SERVICES,
    rate,
    sum_rate,
)

hpa = f'horizontalpodautoscaler=~".*({SERVICES})"'
cpu_utilisation = f'{hpa}, metric_name="cpu", metric_target_type="utilization"'
desired = f"kube_horizontalpodautoscaler_status_desired_replicas{{{hpa}}}"
ours = f'container=~"{SERVICES}"'
pods = f'pod=~".*-({SERVICES})-[^-]+-[^-]+"'
service_of_pod = f'"service", "$1", "pod", ".*-({SERVICES})-[^-]+-[^-]+"'


def ready(condition: str) -> str:
    """Pods of each service whose Ready condition matches `condition`."""
    pod_status = f"kube_pod_status_ready{{{pods}, {condition}}}"
    return f"sum by (service) (label_replace({pod_status}, {service_of_pod}))"


def hpas() -> Row:
    return Row(
        "HorizontalPodAutoscalers",
        [
            timeseries(
                "Desired vs current replicas",
                "What each HPA wants and what runs, against its maxReplicas.",
                [
                    target(
                        desired,
                        "{{horizontalpodautoscaler}} desired",
                    ),
                    target(
                        f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}",
                        "{{horizontalpodautoscaler}} current",
                    ),
                    target(
                        f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}",
                        "{{horizontalpodautoscaler}} max",
                    ),
                ],
            ),
            timeseries(
                "CPU utilisation vs target",
                "Average CPU of the pods as a share of their request, as the HPA sees it, and "
                "the utilisation it aims for.",
                [
                    target(
                        f"kube_horizontalpodautoscaler_status_target_metric{{{cpu_utilisation}}}",
                        "{{horizontalpodautoscaler}} current",
                    ),
                    target(
                        f"kube_horizontalpodautoscaler_spec_target_metric{{{cpu_utilisation}}}",
                        "{{horizontalpodautoscaler}} target",
                    ),
                ],
                unit="percent",
            ),
            timeseries(
                "Scale events",
                "Change of the desired replicas: up bars are scale-ups, down bars scale-downs.",
                [
                    target(
                        f"delta({desired}[{RI}]) != 0",
                        "{{horizontalpodautoscaler}}",
                    )
                ],
                bars=True,
                minimum=None,
            ),
            timeseries(
                "Pods ready vs not ready",
                "Pods of each service by readiness: new pods count as not ready until their "
                "readiness probe passes.",
                [
                    target(ready('condition="true"'), "{{service}} ready"),
                    target(ready('condition=~"false|unknown"'), "{{service}} not ready"),
                ],
                stack=True,
            ),
        ],
    )


def containers() -> Row:
    return Row(
        "Containers",
        [
            timeseries(
                "CPU as a share of the request",
                "Container CPU (cAdvisor) over the CPU requested: the number the HPA's target "
                "utilisation applies to.",
                [
                    target(
                        sum_rate(f"container_cpu_usage_seconds_total{{{ours}}}", "container")
                        + " / sum by (container) "
                        + f"(kube_pod_container_resource_requests{{{ours}, {CPU}}})",
                        "{{container}}",
                    )
                ],
                unit="percentunit",
            ),
            timeseries(
                "Memory working set by service",
                "Memory the kubelet counts against the limits, all pods of a service.",
                [
                    target(
                        f"sum by (container) (container_memory_working_set_bytes{{{ours}}})",
                        "{{container}}",
                    )
                ],
                unit="bytes",
            ),
        ],
    )


def everywhere() -> Row:
    return Row(
        "From the services themselves (also locally)",
        [
            timeseries(
                "Instances up by service",
                "Instances Prometheus scrapes and finds up: follows the current replicas.",
                [target(f"count by (job) (up{{{JOBS}}} == 1)", "{{job}}")],
            ),
            timeseries(
                "CPU by instance (cores)",
                "CPU seconds per second of each process: what drives the HPAs' utilisation.",
                [target(rate(f"process_cpu_seconds_total{{{JOBS}}}"), "{{job}} {{instance}}")],
            ),
        ],
    )


def autoscaling() -> Dashboard:
    return lab_dashboard(
        uid="perflab-autoscaling",
        title="perflab / Autoscaling",
        description="The HPAs at work during a load test: desired and current replicas, CPU "
        "against target, scale events, pod readiness. Needs kube-state-metrics and cAdvisor "
        "(the kind cluster); the last row works locally too.",
        sections=[hpas(), containers(), everywhere()],
    )
