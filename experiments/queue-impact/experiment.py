"""queue-impact: the payment inside the order request vs handed to the worker through Kafka,
with payments healthy and slow."""

from experiments.framework import Arm, Experiment, LoadProfile
from experiments.phase_metrics import PhaseMetrics

SLOW_MS = 400  # the payments_latency_ms fault of the "payments slow" arms
RATE = 8.0  # orders/s offered


def mode(value: str) -> dict[str, dict[str, str]]:
    return {"orders": {"PAYMENT_MODE": value}}


def resources(pm: PhaseMetrics) -> dict[str, float]:
    completion = "order_completion_duration_seconds"
    return {
        # creation to PAID/PAYMENT_FAILED, for the orders that became final during the phase
        "completion_p50_ms": 1000 * pm.quantile("orders", completion, 0.50),
        "completion_p95_ms": 1000 * pm.quantile("orders", completion, 0.95),
        "orders_final_per_s": pm.rate("orders", f"{completion}_count"),
        "consumer_lag_max": pm.gauge("worker", "kafka_consumer_lag", "max"),
        "gateway_in_flight_mean": pm.gauge("gateway", "http_server_active_requests", "mean"),
        "sync_deferred": pm.delta("orders", "orders_sync_payments_total", result="deferred"),
    }


def place(rate: float) -> LoadProfile:
    return LoadProfile(
        journeys={"experiments.journeys:place_order": 1},
        rate=rate,
        duration_s=40,
        warmup_s=5,
        max_vus=200,
        focus="/api/orders",
    )


EXPERIMENT = Experiment(
    name="queue-impact",
    targets=("local", "kind"),
    title="payment inside the request vs through the queue",
    question="What does handing the payment to the worker through Kafka buy over charging "
    "inside the order request: for the latency the user sees, the throughput, and the time "
    "until an order is paid; and what happens to each when payments slow down?",
    hypothesis=f"With the queue the POST returns after one transaction (PENDING), so its "
    f"latency does not include the payment and stays flat when payments slow by {SLOW_MS} ms; "
    "the cost moves to the time until the order is PAID, and once the worker's partitions "
    "cannot keep up, to a growing consumer lag. In the request, the POST pays the charge "
    f"itself: about {SLOW_MS} ms more when payments slow, with more requests in flight at the "
    "gateway (Little's law), but no backlog.",
    change=f"orders PAYMENT_MODE=async (A, C) vs sync (B, D); payments healthy (A, B) vs "
    f"{SLOW_MS} ms slower (C, D, the payments_latency_ms fault)",
    arms=[
        Arm("A", "queue", env=mode("async")),
        Arm("B", "in request", env=mode("sync")),
        Arm(
            "C",
            f"queue, payments +{SLOW_MS} ms",
            env=mode("async"),
            faults={"payments_latency_ms": SLOW_MS},
        ),
        Arm(
            "D",
            f"in request, payments +{SLOW_MS} ms",
            env=mode("sync"),
            faults={"payments_latency_ms": SLOW_MS},
        ),
    ],
    base_env={
        "gateway": {"RATE_LIMIT_ENABLED": "false"},
        "payments": {"PAYMENT_DECLINE_RATE": "0"},
    },
    load=place(RATE),
    quick_load=LoadProfile(
        journeys={"experiments.journeys:place_order": 1},
        rate=RATE,
        duration_s=10,
        warmup_s=3,
        focus="/api/orders",
    ),
    drain_s=180,
    resources=resources,
    headline=(
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "throughput_rps",
        "error_rate",
        "completion_p50_ms",
        "completion_p95_ms",
        "consumer_lag_max",
        "gateway_in_flight_mean",
        "drain_s",
    ),
    limits=(
        f"One arrival rate ({RATE:g} orders/s, open loop) and one slowdown ({SLOW_MS} ms added to "
        "every charge); a slowdown of payments' throughput (errors, a smaller pool) is not "
        "the same experiment.",
        "In sync mode the worker still consumes every event and finds each order charged (two "
        "idempotent calls): a real cost of keeping the queue as the fallback, included in B and "
        "D's CPU figures.",
        "The completion time counts the orders that became final during the measured phase; "
        "orders still pending at its end are counted in `pending_at_end`, and the experiment "
        "waits for them (`drain_s`) before the next phase.",
        "The worker's parallelism is its partitions (3 here, processed concurrently, one "
        "message at a time each): more partitions and worker replicas raise the queue's "
        "capacity under slow payments; this run does not vary them.",
    ),
)
