"""connection-pool: the orders service's pool too small, right, too large."""

from experiments.framework import Arm, Experiment, LoadProfile
from experiments.phase_metrics import PhaseMetrics

SLOW_MS = 20  # the db_slow_ms fault: every orders transaction holds its connection this long


def pool(size: int) -> dict[str, dict[str, str]]:
    return {"orders": {"DB_POOL_SIZE": str(size), "DB_MAX_OVERFLOW": "0"}}


def resources(pm: PhaseMetrics) -> dict[str, float]:
    return {
        "pool_used_mean": pm.gauge("orders", "db_client_connections_usage", "mean", state="used"),
        "pool_used_max": pm.gauge("orders", "db_client_connections_usage", "max", state="used"),
        "pool_max": pm.gauge("orders", "db_client_connections_max", "max"),
        "pool_waiters_mean": pm.gauge("orders", "db_client_connections_pending_requests", "mean"),
        "pool_wait_p95_ms": 1000
        * pm.quantile("orders", "db_client_connections_wait_time_seconds", 0.95),
        "orders_cpu_ms_per_request": 1000
        * pm.delta("orders", "process_cpu_seconds_total")
        / pm.requests
        if pm.requests
        else float("nan"),
    }


EXPERIMENT = Experiment(
    name="connection-pool",
    targets=("local", "kind"),
    title="orders' database pool: too small, right, too large",
    question="How do product reads behave when the orders service's connection pool is too "
    "small, about right, or much larger than needed, with queries that hold a connection?",
    hypothesis=f"Each read holds a connection for about {SLOW_MS} ms, so by Little's law the "
    f"offered 60 req/s need about 1.2 connections on average: a pool of 1 saturates and queues "
    "(latency climbs, then pool timeouts give 503s); 10 serves with short queues; 100 is no "
    "better than 10 at this load (the extra connections stay idle).",
    change="orders DB_POOL_SIZE = 10 (A, baseline), 1 (B), 100 (C), DB_MAX_OVERFLOW=0; orders "
    "restarts between arms",
    arms=[  # the baseline is the right size; the changes go below and above it
        Arm("A", "pool 10 (right)", env=pool(10)),
        Arm("B", "pool 1 (too small)", env=pool(1)),
        Arm("C", "pool 100 (too large)", env=pool(100)),
    ],
    services=("orders", "gateway"),  # reads only: no Kafka, worker or payments
    base_env={"gateway": {"RATE_LIMIT_ENABLED": "false", "CACHE_ENABLED": "false"}},
    base_faults={"db_slow_ms": SLOW_MS},
    load=LoadProfile(
        journeys={"product": 1},
        rate=60,
        duration_s=30,
        warmup_s=5,
        max_vus=300,
        focus="/api/products/{id}",
    ),
    quick_load=LoadProfile(
        journeys={"product": 1},
        rate=60,
        duration_s=10,
        warmup_s=3,
        max_vus=300,
        focus="/api/products/{id}",
    ),
    resources=resources,
    headline=(
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "goodput_rps",
        "error_rate",
        "pool_used_mean",
        "pool_waiters_mean",
        "pool_wait_p95_ms",
    ),
    limits=(
        f"The connection hold time comes from the db_slow_ms fault ({SLOW_MS} ms pg_sleep per "
        "transaction, no CPU): it stands for slow queries; with the real sub-millisecond "
        "product lookup a pool of 1 would not be the bottleneck at this rate.",
        "The cache is off so that every read reaches the database.",
        "'Too large' costs show up when many connections compete for database CPU or memory "
        "(or across many replicas against max_connections); one orders process at 60 req/s "
        "does not create that, so this run cannot show it.",
    ),
)
