"""The Lab overview dashboard: the load beside what each service does with it (rate, errors,
latency, replicas) and the order pipeline."""

from __future__ import annotations

from dashboards.boards.shared import JAEGER_VARIABLE, lab_dashboard
from dashboards.grafana import (
    Dashboard,
    Row,
    target,
    timeseries,
)
from dashboards.promql import (
    JOBS,
    QUANTILES,
    RECORDED_BUCKETS,
    quantile,
    rate,
    sum_rate,
    with_zero,
)


def load() -> Row:
    """Each scenario of the load-test file apart (the exporter's `scenario` label: `default` in
    a file without `scenarios:`)."""
    return Row(
        "Load (from the load generator)",
        [
            timeseries(
                "Virtual users",
                "Running virtual users, those inside an iteration, and the target of a closed-loop "
                "scenario (ramping-vus / constant-vus), per scenario of the load-test file.",
                [
                    target("sum by (scenario) (locust_users)", "running {{scenario}}"),
                    target("sum by (scenario) (locust_users_busy)", "busy {{scenario}}"),
                    target("sum by (scenario) (locust_users_target)", "target {{scenario}}"),
                ],
                w=6,
            ),
            timeseries(
                "Arrival rate",
                "Open-loop scenarios: the target iterations per second, those started, and those "
                "dropped because every VU up to maxVUs was busy (the system fell behind).",
                [
                    target("sum by (scenario) (locust_arrival_rate_target)", "target {{scenario}}"),
                    target(sum_rate("locust_iterations_total", "scenario"), "started {{scenario}}"),
                    target(
                        sum_rate("locust_iterations_dropped_total", "scenario"),
                        "dropped {{scenario}}",
                    ),
                ],
                unit="reqps",
                w=6,
            ),
            timeseries(
                "Requests sent and failed (client side)",
                "What the load generator sends, and what it counts as failed, per scenario.",
                [
                    target(sum_rate("locust_requests_total", "scenario"), "sent {{scenario}}"),
                    target(
                        sum_rate("locust_request_failures_total", "scenario"),
                        "failed {{scenario}}",
                    ),
                ],
                unit="reqps",
                w=6,
            ),
            timeseries(
                "Latency seen by the client",
                "Client-side percentiles per scenario (for open-loop iterations measured from the "
                "scheduled start, so queueing in the generator counts too).",
                [
                    target(
                        quantile(q, "locust_request_duration_seconds_bucket", "scenario"),
                        f"{name} {{{{scenario}}}}",
                    )
                    for name, q in QUANTILES
                ],
                unit="s",
                w=6,
            ),
        ],
    )


def red() -> Row:
    return Row(
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


def capacity() -> Row:
    return Row(
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


def resilience() -> Row:
    return Row(
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


def pipeline() -> Row:
    return Row(
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


def overview() -> Dashboard:
    return lab_dashboard(
        uid="perflab-overview",
        title="perflab / Lab overview",
        description="The load beside what each service does with it: rate, errors, latency, "
        "replicas, and the order pipeline. Load tests are annotated.",
        sections=[load(), red(), capacity(), resilience(), pipeline()],
        variables=[JAEGER_VARIABLE],
    )
