"""The Async pipeline dashboard: from order to payment through the outbox, Kafka and the
worker: rates, lag, time, retries, dead letters."""

from __future__ import annotations

from dashboards.boards.shared import JAEGER_VARIABLE, lab_dashboard
from dashboards.grafana import (
    Dashboard,
    Row,
    stat,
    target,
    timeseries,
)
from dashboards.promql import (
    NOT_HEALTH,
    QUANTILES,
    quantile,
    rate,
    sum_rate,
    with_zero,
)

consumed = 'messaging_client_consumed_messages_total{job="worker"}'
dead = 'messages_dead_lettered_total{job="worker"}'


def totals() -> Row:
    return Row(
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


def flow() -> Row:
    return Row(
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


def latency() -> Row:
    return Row(
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


def failures() -> Row:
    return Row(
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


def async_pipeline() -> Dashboard:
    return lab_dashboard(
        uid="perflab-async",
        title="perflab / Async pipeline",
        description="From order to payment through the outbox, Kafka and the worker: rates, lag, "
        "time, retries, dead letters.",
        sections=[totals(), flow(), latency(), failures()],
        variables=[JAEGER_VARIABLE],
    )
