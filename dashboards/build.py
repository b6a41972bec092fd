"""Builds the lab's six Grafana dashboards and the SLO rules into the chart, their only copy
(deploy/helm/perflab/dashboards/*.json, deploy/helm/perflab/rules/slo.yml). The generated files
are checked in; tests/dashboards/test_structure.py fails when they differ from what this writes.

    make dashboards                                # rewrite them
    .venv/bin/python -m dashboards.build --check   # exit 1 if any is stale

Conventions every query follows (tests/dashboards/ checks them):
  - a service is its `job` label: gateway, orders, payments, worker (locally and on the cluster);
  - rates use $__rate_interval; the Service detail dashboard filters on job="$service";
  - a counter that only appears on its first event (errors, retries, dead letters) falls back to
    0 while the service has traffic (`... or 0 * <traffic>`), so no panel sits on "No data";
  - panels on kube-state-metrics, cAdvisor or database exporters are cluster-only
    (cluster_only.yml), panels on locust_* show the load generator while a test runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from dashboards.grafana import (
    Dashboard,
    Json,
    Row,
    annotation,
    heatmap,
    query_variable,
    stat,
    target,
    textbox_variable,
    timeseries,
)
from dashboards.queries import DASHBOARDS_DIR, REPO, RULES_DIR, source_of

SERVICES = "gateway|orders|payments|worker"
JOBS = f'job=~"{SERVICES}"'
NOT_HEALTH = 'rpc_service!="grpc.health.v1.Health"'
# gRPC codes that are the server's fault (not NOT_FOUND, INVALID_ARGUMENT, ...).
GRPC_FAULTS = 'rpc_grpc_status_code=~"2|4|8|12|13|14|15"'
RI = "$__rate_interval"
RECORDED_BUCKETS = "job_le:server_duration_seconds_bucket:rate1m"
CPU, MEMORY = 'resource="cpu"', 'resource="memory"'
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))

RUN_ANNOTATIONS = [
    annotation(
        "Load test running",
        "max by (scenario) (locust_test_running) > 0",
        title="Load test {{scenario}}",
        text="running",
        color="rgba(255, 152, 48, 0.25)",
        tag_keys="scenario",
    ),
    annotation(
        "Load test start/stop",
        "max by (scenario) (changes(locust_test_running[30s])) > 0",
        title="Load test {{scenario}} started or stopped",
        text="locust_test_running changed",
        color="rgba(255, 96, 96, 1)",
        tag_keys="scenario",
    ),
    annotation(
        "Faults injected",
        f"max by (fault) (perflab_fault_value{{{JOBS}}}) > 0",
        title="Fault {{fault}}",
        text="switched on (admin API)",
        color="rgba(180, 90, 255, 0.25)",
        tag_keys="fault",
    ),
]
JAEGER_VARIABLE = textbox_variable("jaeger_url", "Jaeger UI", "http://localhost:16686")
SERVICE_VARIABLE = query_variable("service", "Service", f"label_values(up{{{JOBS}}}, job)")
LINKS = [
    {
        "title": "perflab dashboards",
        "type": "dashboards",
        "tags": ["perflab"],
        "asDropdown": True,
        "includeVars": False,
        "keepTime": True,
        "targetBlank": False,
        "icon": "external link",
        "tooltip": "",
        "url": "",
    }
]


def rate(selector: str, window: str = RI) -> str:
    return f"rate({selector}[{window}])"


def sum_rate(selector: str, by: str = "") -> str:
    """`sum by (by) (rate(selector[$__rate_interval]))`."""
    return f"sum by ({by}) ({rate(selector)})" if by else f"sum({rate(selector)})"


def quantile(q: float, buckets: str, by: str = "") -> str:
    """histogram_quantile over `sum by (le, by) (rate(buckets[$__rate_interval]))`."""
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) ({rate(buckets)}))"


def with_zero(errors: str, traffic: str) -> str:
    """`errors`, or 0 for each series of `traffic` that has no error series yet."""
    return f"({errors} or 0 * {traffic})"


def error_ratio(bad: str, every: str, by: str) -> str:
    """Rate of `bad` over rate of `every`, by `by`; 0 where `every` has traffic and no error."""
    total = sum_rate(every, by)
    return f"{with_zero(sum_rate(bad, by), total)} / {total}"


def server_buckets_of(job: str) -> str:
    """The latency buckets of what `job` serves: HTTP, gRPC or Kafka messages (only one exists
    per service, so `or` picks it)."""
    return (
        f"sum by (le) ({rate(f'http_request_duration_highr_seconds_bucket{{{job}}}')})"
        f" or sum by (le) ({rate(f'rpc_server_duration_seconds_bucket{{{job}, {NOT_HEALTH}}}')})"
        f" or sum by (le) ({rate(f'messaging_process_duration_seconds_bucket{{{job}}}')})"
    )


def describe(panel: Json) -> Json:
    """Prefixes cluster-only and load-generator panels' descriptions with where data comes from."""
    source = source_of([t["expr"] for t in panel["targets"]])
    if source.startswith("cluster:"):
        exporters = source.removeprefix("cluster:").replace("+", " and ")
        prefix = f"Cluster only ({exporters}; see dashboards/cluster_only.yml). "
    elif source == "loadgen":
        prefix = "Load generator (job loadgen): data only while a load test runs. "
    else:
        return panel
    return {**panel, "description": prefix + panel["description"]}


def rows(*items: Row) -> list[Row]:
    return [
        Row(r.title, [describe(p) for p in r.panels], r.collapsed, r.description) for r in items
    ]


# --- 1. Lab overview --------------------------------------------------------------------------


def overview() -> Dashboard:
    load = Row(
        "Load (from the load generator)",
        [
            timeseries(
                "Virtual users",
                "Running virtual users, those inside an iteration, and the target of a closed-loop "
                "scenario (ramping-vus / constant-vus).",
                [
                    target("sum(locust_users)", "running"),
                    target("sum(locust_users_busy)", "busy"),
                    target("sum(locust_users_target)", "target"),
                ],
                w=6,
            ),
            timeseries(
                "Arrival rate",
                "Open-loop scenarios: the target iterations per second, those started, and those "
                "dropped because every VU up to maxVUs was busy (the system fell behind).",
                [
                    target("sum(locust_arrival_rate_target)", "target"),
                    target(sum_rate("locust_iterations_total"), "started"),
                    target(sum_rate("locust_iterations_dropped_total"), "dropped"),
                ],
                unit="reqps",
                w=6,
            ),
            timeseries(
                "Requests sent and failed (client side)",
                "What the load generator sends, and what it counts as failed.",
                [
                    target(sum_rate("locust_requests_total"), "sent"),
                    target(sum_rate("locust_request_failures_total"), "failed"),
                ],
                unit="reqps",
                w=6,
            ),
            timeseries(
                "Latency seen by the client",
                "Client-side percentiles (for open-loop iterations measured from the scheduled "
                "start, so queueing in the generator counts too).",
                [
                    target(quantile(q, "locust_request_duration_seconds_bucket"), name)
                    for name, q in QUANTILES
                ],
                unit="s",
                w=6,
            ),
        ],
    )
    red = Row(
        "Services: rate, errors, latency",
        [
            timeseries(
                "Requests per second by service",
                "HTTP requests (gateway), gRPC calls served (orders, payments; health checks "
                "excluded), Kafka messages handled (worker). Recording rule "
                "job:server_requests:rate1m.",
                [target("job:server_requests:rate1m", "{{job}}")],
                unit="reqps",
            ),
            timeseries(
                "Server error ratio by service",
                "HTTP 5xx, gRPC server faults (UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, "
                "...), dead-lettered messages, over all requests. 4xx answers are the client's "
                "and are on the Service detail dashboard.",
                [target("job:server_errors:rate1m / job:server_requests:rate1m", "{{job}}")],
                unit="percentunit",
                thresholds=[("green", None), ("red", 0.01)],
            ),
            *(
                timeseries(
                    f"Latency {name} by service",
                    f"The {name} of the time each service takes for what it serves (see the rate "
                    "panel). Recording rule job_le:server_duration_seconds_bucket:rate1m.",
                    [
                        target(
                            f"histogram_quantile({q}, {RECORDED_BUCKETS})",
                            "{{job}}",
                        )
                    ],
                    unit="s",
                    w=8,
                )
                for name, q in QUANTILES
            ),
        ],
    )
    capacity = Row(
        "Capacity",
        [
            timeseries(
                "Replicas by service",
                "Instances Prometheus scrapes and finds up: the pods of each Deployment on the "
                "cluster, one process each locally. The Autoscaling dashboard has the HPAs' view.",
                [target(f"count by (job) (up{{{JOBS}}} == 1)", "{{job}}")],
                w=8,
            ),
            timeseries(
                "CPU by service (cores)",
                "CPU seconds per second of all the service's processes.",
                [
                    target(
                        f"sum by (job) ({rate(f'process_cpu_seconds_total{{{JOBS}}}')})", "{{job}}"
                    )
                ],
                w=8,
            ),
            timeseries(
                "Resident memory by service",
                "Resident set size of all the service's processes.",
                [target(f"sum by (job) (process_resident_memory_bytes{{{JOBS}}})", "{{job}}")],
                unit="bytes",
                w=8,
            ),
        ],
    )
    resilience = Row(
        "Resilience",
        [
            timeseries(
                "Requests refused by the gateway",
                "Requests the gateway sheds with 503 because too many are in flight (admission "
                "control), and those it rate-limits with 429.",
                [
                    target(
                        sum_rate('http_server_shed_requests_total{job="gateway"}'), "shed (503)"
                    ),
                    target(
                        with_zero(
                            sum_rate('http_requests_total{job="gateway", status="429"}'),
                            sum_rate('http_requests_total{job="gateway"}'),
                        ),
                        "rate limited (429)",
                    ),
                ],
                unit="reqps",
                w=8,
            ),
            timeseries(
                "Circuit breakers",
                "State of each circuit breaker: 0 closed, 1 half-open, 2 open (calls fail fast).",
                [
                    target(
                        f"max by (job, name) (circuit_breaker_state{{{JOBS}}})",
                        "{{name}} (in {{job}})",
                    )
                ],
                thresholds=[("green", None), ("orange", 1), ("red", 2)],
                w=8,
            ),
            timeseries(
                "Injected faults",
                "Faults switched on through the admin API (`make fault`): 0 is off. Also shown as "
                "annotations.",
                [target(f"max by (fault) (perflab_fault_value{{{JOBS}}})", "{{fault}}")],
                minimum=None,
                w=8,
            ),
        ],
    )
    pipeline = Row(
        "Order pipeline",
        [
            timeseries(
                "Orders created vs completed",
                "Orders created per second (orders service, idempotent replays excluded) and "
                "orders reaching a final status per second: the asynchronous pipeline keeps up "
                "when the lines overlap.",
                [
                    target(sum_rate('orders_created_total{job="orders"}'), "created"),
                    target(
                        sum_rate('orders_completed_total{job="orders"}', "status"),
                        "{{status}}",
                    ),
                ],
                unit="reqps",
                w=8,
            ),
            timeseries(
                "Kafka consumer lag",
                "Messages the worker's consumer group is behind the high watermark, per topic.",
                [target('sum by (topic) (kafka_consumer_lag{job="worker"})', "{{topic}}")],
                w=8,
            ),
            timeseries(
                "Order created to final status",
                "Time from an order's creation to PAID or PAYMENT_FAILED: the whole async path "
                "(outbox, Kafka, worker, payments, back to orders).",
                [
                    target(
                        quantile(q, 'order_completion_duration_seconds_bucket{job="orders"}'), name
                    )
                    for name, q in QUANTILES
                ],
                unit="s",
                w=8,
            ),
        ],
    )
    return Dashboard(
        uid="perflab-overview",
        title="perflab / Lab overview",
        description="The load beside what each service does with it: rate, errors, latency, "
        "replicas, and the order pipeline. Load tests are annotated.",
        rows=rows(load, red, capacity, resilience, pipeline),
        variables=[JAEGER_VARIABLE],
        annotations=RUN_ANNOTATIONS,
        links=LINKS,
    )


# --- 2. Service detail ------------------------------------------------------------------------


def service_detail() -> Dashboard:
    job = 'job="$service"'
    http_requests = f"http_requests_total{{{job}}}"
    rpc_calls = f"rpc_server_duration_seconds_count{{{job}, {NOT_HEALTH}}}"
    messages = f"messaging_process_duration_seconds_count{{{job}}}"
    http_5xx = f'http_requests_total{{{job}, status=~"5.."}}'
    rpc_faults = f"rpc_server_duration_seconds_count{{{job}, {NOT_HEALTH}, {GRPC_FAULTS}}}"
    dead_lettered = f'messaging_process_duration_seconds_count{{{job}, outcome="dead_lettered"}}'
    red = Row(
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
    saturation = Row(
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
    container = 'container="$service"'
    kubernetes = Row(
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
    return Dashboard(
        uid="perflab-service",
        title="perflab / Service detail",
        description="One service in depth: RED per operation, a latency heatmap with exemplars "
        "that open the trace in Jaeger, what it waits on, concurrency, CPU and memory.",
        rows=rows(red, saturation, kubernetes),
        variables=[SERVICE_VARIABLE, JAEGER_VARIABLE],
        annotations=RUN_ANNOTATIONS,
        links=LINKS,
    )


# --- 3. Async pipeline ------------------------------------------------------------------------


def async_pipeline() -> Dashboard:
    consumed = 'messaging_client_consumed_messages_total{job="worker"}'
    dead = 'messages_dead_lettered_total{job="worker"}'
    totals = Row(
        "In the selected time range",
        [
            stat(
                "Orders created",
                "Orders created in the time range.",
                [target('sum(increase(orders_created_total{job="orders"}[$__range]))')],
                decimals=0,
            ),
            stat(
                "Orders paid",
                "Orders that reached PAID in the time range.",
                [
                    target(
                        'sum(increase(orders_completed_total{job="orders", status="PAID"}'
                        "[$__range])) or vector(0)"
                    )
                ],
                decimals=0,
            ),
            stat(
                "Messages dead-lettered",
                "Messages sent to the dead-letter topic in the time range (alert "
                "DeadLetterTopicReceivingMessages).",
                [target(f"sum(increase({dead}[$__range])) or vector(0)")],
                decimals=0,
                thresholds=[("green", None), ("red", 1)],
            ),
            stat(
                "Consumer lag now",
                "Messages the worker is behind, all partitions.",
                [target('sum(kafka_consumer_lag{job="worker"})')],
                decimals=0,
                thresholds=[("green", None), ("orange", 100), ("red", 1000)],
            ),
        ],
    )
    flow = Row(
        "Flow through Kafka",
        [
            timeseries(
                "Produced vs consumed",
                "Events the orders outbox relay publishes to orders.created, messages the worker "
                "receives per topic, and messages it sends to the dead-letter topic.",
                [
                    target(
                        sum_rate('outbox_published_total{job="orders"}'), "produced orders.created"
                    ),
                    target(f"sum by (topic) ({rate(consumed)})", "consumed {{topic}}"),
                    target(
                        with_zero(
                            f"sum by (topic) ({rate(dead)})", f"sum by (topic) ({rate(consumed)})"
                        ),
                        "dead-lettered from {{topic}}",
                    ),
                ],
                unit="reqps",
            ),
            timeseries(
                "Consumer lag by partition",
                "Messages behind the high watermark on each partition: one growing partition is "
                "a hot key or a stuck consumer, all growing is too little capacity.",
                [
                    target(
                        'max by (topic, partition) (kafka_consumer_lag{job="worker"})',
                        "{{topic}} [{{partition}}]",
                    )
                ],
            ),
        ],
    )
    latency = Row(
        "Time",
        [
            timeseries(
                "Order created to paid",
                "Time from an order's creation until it is PAID: outbox relay, Kafka, worker, "
                "payments and the result applied back to the order.",
                [
                    target(
                        quantile(
                            q,
                            'order_completion_duration_seconds_bucket{job="orders", status="PAID"}',
                        ),
                        name,
                    )
                    for name, q in QUANTILES
                ],
                unit="s",
                w=8,
            ),
            timeseries(
                "Message processing time",
                "Time the worker spends on one message, retries included.",
                [
                    target(
                        quantile(q, 'messaging_process_duration_seconds_bucket{job="worker"}'), name
                    )
                    for name, q in QUANTILES
                ],
                unit="s",
                w=8,
            ),
            timeseries(
                "Outbox publish delay",
                "Time an outbox row waits before the relay publishes it to Kafka.",
                [
                    target(quantile(q, 'outbox_publish_delay_seconds_bucket{job="orders"}'), name)
                    for name, q in QUANTILES
                ],
                unit="s",
                w=8,
            ),
            timeseries(
                "Worker calls p99",
                "The gRPC calls the worker makes per message (Charge, ApplyPaymentResult). "
                "Exemplars open the trace in Jaeger.",
                [
                    target(
                        quantile(
                            0.99,
                            f'rpc_client_duration_seconds_bucket{{job="worker", {NOT_HEALTH}}}',
                            "rpc_method",
                        ),
                        "{{rpc_method}}",
                    )
                ],
                unit="s",
                w=12,
            ),
            timeseries(
                "Charged inside the request (PAYMENT_MODE=sync)",
                "Charges orders makes itself in CreateOrder when PAYMENT_MODE=sync, by result; "
                "'deferred' orders were answered PENDING and left to the worker (payments "
                "failed or the deadline was short). Zero in the default async mode.",
                [
                    target(
                        "sum by (result) ("
                        + rate('orders_sync_payments_total{job="orders"}')
                        + ")",
                        "{{result}}",
                    )
                ],
                unit="ops",
                w=12,
            ),
        ],
    )
    failures = Row(
        "Failures and backlog",
        [
            timeseries(
                "Retries and dead letters",
                "Transient failures retried with backoff, and permanent ones sent to the "
                "dead-letter topic.",
                [
                    target(
                        with_zero(
                            sum_rate('worker_retries_total{job="worker"}', "topic"),
                            f"sum by (topic) ({rate(consumed)})",
                        ),
                        "retried {{topic}}",
                    ),
                    target(
                        with_zero(
                            f"sum by (topic) ({rate(dead)})", f"sum by (topic) ({rate(consumed)})"
                        ),
                        "dead-lettered {{topic}}",
                    ),
                ],
                unit="reqps",
                w=6,
            ),
            timeseries(
                "Outbox backlog",
                "Outbox rows not yet published, and relay batches that failed and rolled back.",
                [
                    target('sum(outbox_backlog_events{job="orders"})', "waiting rows"),
                    target(
                        sum_rate('outbox_publish_errors_total{job="orders"}'), "failed batches/s"
                    ),
                ],
                w=6,
            ),
            timeseries(
                "Charges by result",
                "Charges the payments service decided, by result, and calls answered from the "
                "ledger (a redelivered message charging nothing twice).",
                [
                    target(sum_rate('payments_total{job="payments"}', "result"), "{{result}}"),
                    target(
                        sum_rate('payments_replayed_total{job="payments"}'), "idempotent replays"
                    ),
                ],
                unit="reqps",
                w=6,
            ),
            timeseries(
                "Offset commits",
                "The worker's Kafka offset commits by result (at most about one per second).",
                [
                    target(
                        sum_rate('kafka_consumer_commits_total{job="worker"}', "result"),
                        "{{result}}",
                    )
                ],
                unit="reqps",
                w=6,
            ),
        ],
    )
    return Dashboard(
        uid="perflab-async",
        title="perflab / Async pipeline",
        description="From order to payment through the outbox, Kafka and the worker: rates, lag, "
        "time, retries, dead letters.",
        rows=rows(totals, flow, latency, failures),
        variables=[JAEGER_VARIABLE],
        annotations=RUN_ANNOTATIONS,
        links=LINKS,
    )


# --- 4. Autoscaling ---------------------------------------------------------------------------


def autoscaling() -> Dashboard:
    hpa = f'horizontalpodautoscaler=~".*({SERVICES})"'
    cpu_utilisation = f'{hpa}, metric_name="cpu", metric_target_type="utilization"'
    desired = f"kube_horizontalpodautoscaler_status_desired_replicas{{{hpa}}}"
    ours = f'container=~"{SERVICES}"'

    def ready(condition: str) -> str:
        """Pods of each service whose Ready condition matches `condition`."""
        pod_status = f"kube_pod_status_ready{{{pods}, {condition}}}"
        return f"sum by (service) (label_replace({pod_status}, {service_of_pod}))"

    pods = f'pod=~".*-({SERVICES})-[^-]+-[^-]+"'
    service_of_pod = f'"service", "$1", "pod", ".*-({SERVICES})-[^-]+-[^-]+"'
    hpas = Row(
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
    containers = Row(
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
    everywhere = Row(
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
    return Dashboard(
        uid="perflab-autoscaling",
        title="perflab / Autoscaling",
        description="The HPAs at work during a load test: desired and current replicas, CPU "
        "against target, scale events, pod readiness. Needs kube-state-metrics and cAdvisor "
        "(the kind cluster); the last row works locally too.",
        rows=rows(hpas, containers, everywhere),
        annotations=RUN_ANNOTATIONS,
        links=LINKS,
    )


# --- 5. Data stores ---------------------------------------------------------------------------


def data_stores() -> Dashboard:
    lookups = 'cache_requests_total{job="gateway"}'
    redis = Row(
        "Redis, as the gateway uses it",
        [
            timeseries(
                "Cache hit ratio",
                "Product look-ups answered from Redis over all look-ups (cache-aside, "
                "CACHE_TTL_SECONDS).",
                [
                    target(
                        with_zero(
                            sum_rate('cache_requests_total{job="gateway", result="hit"}', "cache"),
                            f"sum by (cache) ({rate(lookups)})",
                        )
                        + f" / sum by (cache) ({rate(lookups)})",
                        "{{cache}}",
                    )
                ],
                unit="percentunit",
                w=8,
            ),
            timeseries(
                "Redis operations per second",
                "The gateway's Redis round trips: cache look-ups by result and rate-limit checks "
                "by decision (error = Redis failed and the limiter failed open).",
                [
                    target(f"sum by (result) ({rate(lookups)})", "cache {{result}}"),
                    target(
                        sum_rate('rate_limit_decisions_total{job="gateway"}', "decision"),
                        "rate limit {{decision}}",
                    ),
                ],
                unit="ops",
                stack=True,
                w=8,
            ),
            timeseries(
                "Stampede protection",
                "Cache misses that loaded the product from orders, and misses that waited for a "
                "load already in flight instead of adding one (coalesced).",
                [
                    target(
                        sum_rate('cache_requests_total{job="gateway", result="miss"}', "cache"),
                        "{{cache}} loads",
                    ),
                    target(
                        with_zero(
                            sum_rate('cache_coalesced_total{job="gateway"}', "cache"),
                            f"sum by (cache) ({rate(lookups)})",
                        ),
                        "{{cache}} coalesced",
                    ),
                ],
                unit="ops",
                w=8,
            ),
        ],
    )
    pools = 'job=~"orders|payments"'
    postgres = Row(
        "PostgreSQL, as orders and payments use it",
        [
            timeseries(
                "Connection pool",
                "SQLAlchemy pool connections in use (checked out by a request) and idle, and the "
                "most the pool may open (DB_POOL_SIZE + DB_MAX_OVERFLOW).",
                [
                    target(
                        f"sum by (job, state) (db_client_connections_usage{{{pools}}})",
                        "{{job}} {{state}}",
                    ),
                    target(f"sum by (job) (db_client_connections_max{{{pools}}})", "{{job}} max"),
                ],
            ),
            timeseries(
                "Pool utilisation",
                "Connections in use over the pool's maximum: at 100% requests queue for a "
                "connection (up to DB_POOL_TIMEOUT_SECONDS).",
                [
                    target(
                        f'sum by (job) (db_client_connections_usage{{{pools}, state="used"}})'
                        f" / sum by (job) (db_client_connections_max{{{pools}}})",
                        "{{job}}",
                    )
                ],
                unit="percentunit",
                thresholds=[("green", None), ("orange", 0.8)],
            ),
            timeseries(
                "Requests waiting for a connection",
                "Requests queued for a pool connection right now (opening a new one included). "
                "Waiters while utilisation sits at 100% mean the pool, not PostgreSQL, limits.",
                [
                    target(
                        f"sum by (job) (db_client_connections_pending_requests{{{pools}}})",
                        "{{job}}",
                    )
                ],
            ),
            timeseries(
                "Connection wait p95",
                "Time to get a connection from the pool: near zero while one is free; the "
                "queueing time when the pool is exhausted (up to DB_POOL_TIMEOUT_SECONDS).",
                [
                    target(
                        quantile(
                            0.95,
                            f"db_client_connections_wait_time_seconds_bucket{{{pools}}}",
                            "job",
                        ),
                        "{{job}}",
                    )
                ],
                unit="s",
            ),
            timeseries(
                "Database-bound calls p95",
                "gRPC methods of orders and payments, each a few SQL statements in one "
                "transaction. Exemplars open the trace, whose spans show each statement.",
                [
                    target(
                        quantile(
                            0.95,
                            f"rpc_server_duration_seconds_bucket{{{pools}, {NOT_HEALTH}}}",
                            "job, rpc_method",
                        ),
                        "{{job}} {{rpc_method}}",
                    )
                ],
                unit="s",
                w=24,
            ),
        ],
    )
    redis_server = Row(
        "Redis server (redis_exporter, not deployed yet)",
        [
            timeseries(
                "Keyspace hit ratio",
                "Hits over look-ups of keys, all clients.",
                [
                    target(
                        f"{sum_rate('redis_keyspace_hits_total')} / "
                        f"({sum_rate('redis_keyspace_hits_total')}"
                        f" + {sum_rate('redis_keyspace_misses_total')})",
                        "hit ratio",
                    )
                ],
                unit="percentunit",
                w=8,
            ),
            timeseries(
                "Commands per second",
                "The ten busiest Redis commands.",
                [target(f"topk(10, sum by (cmd) ({rate('redis_commands_total')}))", "{{cmd}}")],
                unit="ops",
                w=8,
            ),
            timeseries(
                "Memory",
                "Memory Redis uses, against maxmemory.",
                [
                    target("sum(redis_memory_used_bytes)", "used"),
                    target("sum(redis_memory_max_bytes)", "max"),
                ],
                unit="bytes",
                w=8,
            ),
        ],
        collapsed=True,
    )
    databases = 'datname=~"orders|payments"'
    statement_seconds = sum_rate(
        f"pg_stat_statements_seconds_total{{{databases}}}", "datname, queryid"
    )
    statement_calls = sum_rate(f"pg_stat_statements_calls_total{{{databases}}}", "datname, queryid")
    pg_server = Row(
        "PostgreSQL server (postgres_exporter with pg_stat_statements, not deployed yet)",
        [
            timeseries(
                "Mean time by statement (top 10)",
                "Mean execution time of the ten slowest statements (pg_stat_statements, by "
                "query id; --collector.stat_statements.include_query adds the text).",
                [
                    target(
                        f"topk(10, {statement_seconds} / {statement_calls})",
                        "{{datname}} {{queryid}}",
                    )
                ],
                unit="s",
                w=8,
            ),
            timeseries(
                "Time spent by statement (top 10)",
                "Seconds per second spent in each statement: where the database's time goes.",
                [
                    target(
                        f"topk(10, {statement_seconds})",
                        "{{datname}} {{queryid}}",
                    )
                ],
                w=8,
            ),
            timeseries(
                "Rows scanned vs returned",
                "Rows the database read per second against rows its statements returned: a "
                "large gap is a sequential scan where an index would do.",
                [
                    target(
                        sum_rate(f"pg_stat_database_tup_returned{{{databases}}}", "datname"),
                        "{{datname}} scanned",
                    ),
                    target(
                        sum_rate(f"pg_stat_statements_rows_total{{{databases}}}", "datname"),
                        "{{datname}} returned",
                    ),
                ],
                w=8,
            ),
        ],
        collapsed=True,
    )
    return Dashboard(
        uid="perflab-datastores",
        title="perflab / Data stores",
        description="Redis and PostgreSQL as the services see them: cache hit ratio, operations, "
        "stampede protection, connection pools and database-bound latency. Server-side panels "
        "need redis_exporter / postgres_exporter (collapsed rows).",
        rows=rows(redis, postgres, redis_server, pg_server),
        variables=[JAEGER_VARIABLE],
        annotations=RUN_ANNOTATIONS,
        links=LINKS,
    )


# --- 6. SLOs and their rules ------------------------------------------------------------------


@dataclass(frozen=True)
class Slo:
    """An SLO whose SLI is bad events over all events. `errors` and `total` are PromQL rates with
    `$w` for the window."""

    name: str
    title: str
    objective: float
    description: str
    errors: str
    total: str

    @property
    def budget(self) -> float:
        return round(1 - self.objective, 10)


def availability(selector: str, bad: str) -> tuple[str, str]:
    """(errors, total) for `selector` events of which `bad` (extra matchers) are errors."""
    base = selector.rstrip("}")
    total = f"sum(rate({selector}[$w]))"
    return with_zero(f"sum(rate({base}, {bad}}}[$w]))", total), total


def latency(histogram: str, matchers: str, le: str) -> tuple[str, str]:
    """(errors, total) for events of `histogram` slower than the bucket `le`."""
    total = f"sum(rate({histogram}_count{{{matchers}}}[$w]))"
    return f'({total} - sum(rate({histogram}_bucket{{{matchers}, le="{le}"}}[$w])))', total


SLOS = [
    Slo(
        "gateway-availability",
        "Gateway availability",
        0.995,
        "99.5% of API requests answer without a server error (5xx).",
        *availability('http_requests_total{job="gateway"}', 'status=~"5.."'),
    ),
    Slo(
        "gateway-latency",
        "Gateway latency",
        0.99,
        "99% of API requests are answered within 250 ms.",
        *latency("http_request_duration_highr_seconds", 'job="gateway"', "0.25"),
    ),
    Slo(
        "pipeline-availability",
        "Order pipeline availability",
        0.995,
        "99.5% of order events are processed, not dead-lettered.",
        # A dead-lettered message was consumed too: errors over consumed.
        with_zero(
            'sum(rate(messages_dead_lettered_total{job="worker"}[$w]))',
            'sum(rate(messaging_client_consumed_messages_total{job="worker"}[$w]))',
        ),
        'sum(rate(messaging_client_consumed_messages_total{job="worker"}[$w]))',
    ),
    Slo(
        "pipeline-latency",
        "Order pipeline latency",
        0.99,
        "99% of orders reach a final status (PAID or PAYMENT_FAILED) within 5 s of creation.",
        *latency("order_completion_duration_seconds", 'job="orders"', "5.0"),
    ),
]
# Multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs", table 5-8):
# (severity, long window, short window, burn rate) for a 30-day budget.
BURN_ALERTS: dict[str, tuple[str, str, list[tuple[str, str, float]]]] = {
    "SLOErrorBudgetBurnFast": ("page", "2m", [("1h", "5m", 14.4), ("6h", "30m", 6)]),
    "SLOErrorBudgetBurnSlow": ("ticket", "15m", [("1d", "2h", 3), ("3d", "6h", 1)]),
}
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def slo_rules() -> dict:
    groups = []
    for slo in SLOS:
        label = {"slo": slo.name}
        sel = f'{{slo="{slo.name}"}}'
        rules: list[dict] = [
            {"record": "slo:objective:ratio", "expr": f"vector({slo.objective})", "labels": label},
            {
                "record": "slo:sli_errors:rate5m",
                "expr": slo.errors.replace("$w", "5m"),
                "labels": label,
            },
            {
                "record": "slo:sli_requests:rate5m",
                "expr": slo.total.replace("$w", "5m"),
                "labels": label,
            },
        ]
        for w in WINDOWS:
            expr = f"{slo.errors.replace('$w', w)}\n/\n{slo.total.replace('$w', w)}"
            rules.append({"record": f"slo:sli_error:ratio_rate{w}", "expr": expr, "labels": label})
        rules += [
            {
                "record": "slo:sli_error:ratio_rate30d",
                "expr": f"sum_over_time(slo:sli_errors:rate5m{sel}[30d])\n"
                f"/\nsum_over_time(slo:sli_requests:rate5m{sel}[30d])",
                "labels": label,
            },
            {
                "record": "slo:error_budget_remaining:ratio",
                "expr": f"1 - slo:sli_error:ratio_rate30d{sel} / {slo.budget}",
                "labels": label,
            },
        ]
        for alert, (severity, for_, pairs) in BURN_ALERTS.items():
            conditions = [
                f"(\n  slo:sli_error:ratio_rate{long}{sel} > {burn} * {slo.budget}\n"
                f"  and\n  slo:sli_error:ratio_rate{short}{sel} > {burn} * {slo.budget}\n)"
                for long, short, burn in pairs
            ]
            windows = " or ".join(
                f"{burn} over both {long} and {short}" for long, short, burn in pairs
            )
            rules.append(
                {
                    "alert": alert,
                    "expr": "\nor\n".join(conditions),
                    "for": for_,
                    "labels": {"severity": severity, **label},
                    "annotations": {
                        "summary": f"{slo.title}: error budget burning ({severity})",
                        "description": f"SLO: {slo.description} The error ratio is "
                        "{{ $value | humanizePercentage }}; the burn rate (error ratio over the "
                        f"{slo.budget:.1%} budget) exceeds {windows}.",
                    },
                }
            )
        groups.append({"name": f"perflab-slo-{slo.name}", "interval": "30s", "rules": rules})
    return {"groups": groups}


def slos() -> Dashboard:
    sections = []
    for slo in SLOS:
        sel = f'{{slo="{slo.name}"}}'
        sections.append(
            Row(
                f"{slo.title}: {slo.description}",
                [
                    stat(
                        "Objective",
                        "Share of good events the SLO promises over 30 days.",
                        [target(f"slo:objective:ratio{sel}")],
                        unit="percentunit",
                        decimals=2,
                        w=4,
                        h=7,
                    ),
                    stat(
                        "Attained (30 days)",
                        "Share of good events over the last 30 days (or the data Prometheus has).",
                        [target(f"1 - slo:sli_error:ratio_rate30d{sel}")],
                        unit="percentunit",
                        decimals=3,
                        w=4,
                        h=7,
                    ),
                    stat(
                        "Error budget remaining",
                        "Share of the 30-day error budget not yet spent; below 0 the SLO is "
                        "missed.",
                        [target(f"slo:error_budget_remaining:ratio{sel}")],
                        unit="percentunit",
                        decimals=1,
                        thresholds=[("red", None), ("orange", 0), ("green", 0.25)],
                        w=4,
                        h=7,
                    ),
                    timeseries(
                        "Burn rate",
                        "Error ratio over the budget (1 = spending exactly the 30-day budget). "
                        "SLOErrorBudgetBurnFast pages when 1h and 5m both exceed 14.4, or 6h and "
                        "30m exceed 6; SLOErrorBudgetBurnSlow opens a ticket at 3 (1d and 2h) or "
                        "1 (3d and 6h).",
                        [
                            target(f"slo:sli_error:ratio_rate{w}{sel} / {slo.budget}", w)
                            for w in ("5m", "30m", "1h", "6h")
                        ],
                        thresholds=[("green", None), ("orange", 1), ("red", 6), ("dark-red", 14.4)],
                        legend_calcs=("lastNotNull", "max"),
                        w=12,
                        h=7,
                    ),
                ],
            )
        )
    return Dashboard(
        uid="perflab-slo",
        title="perflab / SLOs",
        description="Availability and latency SLOs of the gateway and the order pipeline: "
        "attainment, error budget and multi-window burn rates (rules in rules/slo.yml).",
        rows=rows(*sections),
        annotations=RUN_ANNOTATIONS,
        links=LINKS,
        time_from="now-6h",
    )


# --- Output -----------------------------------------------------------------------------------

DASHBOARDS = {
    "overview.json": overview,
    "service.json": service_detail,
    "async.json": async_pipeline,
    "autoscaling.json": autoscaling,
    "datastores.json": data_stores,
    "slo.json": slos,
}

SLO_RULES_HEADER = """\
# GENERATED by dashboards/build.py from its SLOS list: edit that, then run
#   .venv/bin/python -m dashboards.build
# One group per SLO: the SLI's error ratio over the windows the burn-rate alerts use, the
# 30-day attainment and error budget remaining, and multi-window multi-burn-rate alerts
# (Google SRE workbook). Unit tests: dashboards/tests/slo_test.yml.
"""


class _Dumper(yaml.SafeDumper):
    """Block style as a person writes it: no anchors, lists indented under their key."""

    def ignore_aliases(self, data: object) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {
        DASHBOARDS_DIR / name: json.dumps(build().to_json(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }
    files[RULES_DIR / "slo.yml"] = SLO_RULES_HEADER + yaml.dump(
        slo_rules(), Dumper=_Dumper, sort_keys=False, width=200
    )
    return files


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    args = parser.parse_args()
    files = render()
    stale = []
    for path, content in files.items():
        if path.exists() and path.read_text() == content:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    # A dashboard the builder no longer makes (renamed or dropped) leaves the chart too.
    orphans = [path for path in DASHBOARDS_DIR.glob("*.json") if path not in files]
    for path in orphans:
        if not args.check:
            path.unlink()
    for path in stale:
        print(("stale: " if args.check else "wrote ") + str(path.relative_to(REPO)))
    for path in orphans:
        print(("stale: " if args.check else "removed ") + str(path.relative_to(REPO)))
    return 1 if args.check and (stale or orphans) else 0


if __name__ == "__main__":
    sys.exit(main())
