"""The Service detail dashboard: one service ($service) in depth: RED per operation, a latency
heatmap with exemplars that open the trace in Jaeger, what it waits on, concurrency, CPU and
memory."""

from __future__ import annotations

from dashboards.boards.shared import JAEGER_VARIABLE, SERVICE_VARIABLE, lab_dashboard
from dashboards.grafana import (
    Dashboard,
    Row,
    heatmap,
    target,
    timeseries,
)
from dashboards.promql import (
    CPU,
    GRPC_FAULTS,
    MEMORY,
    NOT_HEALTH,
    QUANTILES,
    error_ratio,
    quantile,
    rate,
    server_buckets_of,
    sum_rate,
)

job = 'job="$service"'
http_requests = f"http_requests_total{{{job}}}"
rpc_calls = f"rpc_server_duration_seconds_count{{{job}, {NOT_HEALTH}}}"
messages = f"messaging_process_duration_seconds_count{{{job}}}"
http_5xx = f'http_requests_total{{{job}, status=~"5.."}}'
rpc_faults = f"rpc_server_duration_seconds_count{{{job}, {NOT_HEALTH}, {GRPC_FAULTS}}}"
dead_lettered = f'messaging_process_duration_seconds_count{{{job}, outcome="dead_lettered"}}'
container = 'container="$service"'


def red() -> Row:
    return Row(
        "Rate, errors, duration of $service",
        [
            timeseries(
                "Requests per second by operation",
                "HTTP requests by handler (gateway), gRPC calls by method (orders, payments), "
                "messages by topic and outcome (worker).",
                [
                    target(
                        f"sum by (method, handler) ({rate(http_requests)})",
                        "{{method}} {{handler}}",
                    ),
                    target(f"sum by (rpc_method) ({rate(rpc_calls)})", "{{rpc_method}}"),
                    target(f"sum by (topic, outcome) ({rate(messages)})", "{{topic}} {{outcome}}"),
                ],
                unit="reqps",
            ),
            timeseries(
                "Answers by status",
                "HTTP status codes, gRPC status codes (0 = OK, 5 = NOT_FOUND, 14 = UNAVAILABLE, "
                "...), message outcomes (processed, retry_later, dead_lettered).",
                [
                    target(f"sum by (status) ({rate(http_requests)})", "HTTP {{status}}"),
                    target(
                        f"sum by (rpc_grpc_status_code) ({rate(rpc_calls)})",
                        "gRPC {{rpc_grpc_status_code}}",
                    ),
                    target(f"sum by (outcome) ({rate(messages)})", "{{outcome}}"),
                ],
                unit="reqps",
                stack=True,
            ),
            timeseries(
                "Server error ratio by operation",
                "HTTP 5xx, gRPC server faults, dead-lettered messages, over all requests of the "
                "operation; 0 while there is traffic and no error.",
                [
                    target(error_ratio(http_5xx, http_requests, "handler"), "{{handler}}"),
                    target(error_ratio(rpc_faults, rpc_calls, "rpc_method"), "{{rpc_method}}"),
                    target(error_ratio(dead_lettered, messages, "topic"), "{{topic}}"),
                ],
                unit="percentunit",
                thresholds=[("green", None), ("red", 0.01)],
            ),
            timeseries(
                "Latency p50 / p95 / p99",
                "Time $service takes for what it serves. Exemplars (dots) carry the trace id: "
                "click one to open the trace in Jaeger (orders and payments; the worker's and "
                "the gateway's own histograms carry none yet).",
                [
                    target(f"histogram_quantile({q}, {server_buckets_of(job)})", name)
                    for name, q in QUANTILES
                ],
                unit="s",
            ),
            heatmap(
                "Latency heatmap",
                "Requests per latency bucket over time: a second band is a second population "
                "(cache hits vs misses, a slow dependency). Exemplars link to Jaeger.",
                [target(server_buckets_of(job), "{{le}}", fmt="heatmap")],
            ),
            timeseries(
                "Latency p99 by operation",
                "The slowest operations. The gateway's per-handler histogram only has 0.1 / 0.5 / "
                "1 s buckets, so its p99 is coarse; the heatmap has the fine view.",
                [
                    target(
                        quantile(
                            0.99,
                            f"http_request_duration_seconds_bucket{{{job}}}",
                            "method, handler",
                        ),
                        "{{method}} {{handler}}",
                    ),
                    target(
                        quantile(
                            0.99,
                            f"rpc_server_duration_seconds_bucket{{{job}, {NOT_HEALTH}}}",
                            "rpc_method",
                        ),
                        "{{rpc_method}}",
                    ),
                    target(
                        quantile(
                            0.99,
                            f"messaging_process_duration_seconds_bucket{{{job}}}",
                            "topic, outcome",
                        ),
                        "{{topic}} {{outcome}}",
                    ),
                ],
                unit="s",
            ),
        ],
    )


def saturation() -> Row:
    return Row(
        "What $service waits on, and its resources",
        [
            timeseries(
                "Dependencies p99",
                "What $service waits on: gRPC calls it makes (gateway, worker; the worker's "
                "exemplars link to Jaeger), the card processor (payments), outbox rows waiting "
                "to reach Kafka (orders).",
                [
                    target(
                        quantile(
                            0.99,
                            f"rpc_client_duration_seconds_bucket{{{job}, {NOT_HEALTH}}}",
                            "rpc_method",
                        ),
                        "gRPC {{rpc_method}}",
                    ),
                    target(
                        quantile(0.99, f"payment_processor_duration_seconds_bucket{{{job}}}"),
                        "card processor",
                    ),
                    target(
                        quantile(0.99, f"outbox_publish_delay_seconds_bucket{{{job}}}"),
                        "outbox to Kafka",
                    ),
                ],
                unit="s",
            ),
            timeseries(
                "Concurrency",
                "Average requests in progress, from Little's law: seconds spent serving per "
                "second. The gateway also reports its in-flight requests directly.",
                [
                    target(
                        sum_rate(f"http_request_duration_seconds_sum{{{job}}}")
                        + " or "
                        + sum_rate(f"rpc_server_duration_seconds_sum{{{job}, {NOT_HEALTH}}}")
                        + " or "
                        + sum_rate(f"messaging_process_duration_seconds_sum{{{job}}}"),
                        "average in progress",
                    ),
                    target(f"sum(http_server_active_requests{{{job}}})", "in flight (gateway)"),
                ],
            ),
            timeseries(
                "CPU by instance (cores)",
                "CPU seconds per second of each process (pod on the cluster). A Python process "
                "tops out near 1 core.",
                [target(rate(f"process_cpu_seconds_total{{{job}}}"), "{{instance}}")],
                thresholds=[("green", None), ("orange", 0.8)],
            ),
            timeseries(
                "Resident memory by instance",
                "Resident set size of each process (pod on the cluster).",
                [target(f"process_resident_memory_bytes{{{job}}}", "{{instance}}")],
                unit="bytes",
            ),
        ],
    )


def kubernetes() -> Row:
    return Row(
        "Pods of $service (cluster only)",
        [
            timeseries(
                "CPU by pod vs request",
                "Container CPU (cAdvisor) and the CPU request the HPA's utilisation target is a "
                "share of.",
                [
                    target(
                        sum_rate(f"container_cpu_usage_seconds_total{{{container}}}", "pod"),
                        "{{pod}}",
                    ),
                    target(
                        f"max(kube_pod_container_resource_requests{{{container}, {CPU}}})",
                        "request",
                    ),
                ],
                w=8,
            ),
            timeseries(
                "CPU throttling by pod",
                "Share of CFS periods in which the container hit its CPU limit.",
                [
                    target(
                        sum_rate(f"container_cpu_cfs_throttled_periods_total{{{container}}}", "pod")
                        + " / "
                        + sum_rate(f"container_cpu_cfs_periods_total{{{container}}}", "pod"),
                        "{{pod}}",
                    )
                ],
                unit="percentunit",
                w=8,
            ),
            timeseries(
                "Memory working set by pod vs limit",
                "What the kubelet counts against the memory limit (OOM kill above it).",
                [
                    target(
                        f"sum by (pod) (container_memory_working_set_bytes{{{container}}})",
                        "{{pod}}",
                    ),
                    target(
                        f"max(kube_pod_container_resource_limits{{{container}, {MEMORY}}})",
                        "limit",
                    ),
                ],
                unit="bytes",
                w=8,
            ),
        ],
        collapsed=True,
    )


def service_detail() -> Dashboard:
    return lab_dashboard(
        uid="perflab-service",
        title="perflab / Service detail",
        description="One service in depth: RED per operation, a latency heatmap with exemplars "
        "that open the trace in Jaeger, what it waits on, concurrency, CPU and memory.",
        sections=[red(), saturation(), kubernetes()],
        variables=[SERVICE_VARIABLE, JAEGER_VARIABLE],
    )
