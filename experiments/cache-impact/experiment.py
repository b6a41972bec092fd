"""cache-impact: product reads with and without the gateway's Redis cache-aside."""

from experiments.framework import Arm, Experiment, LoadProfile
from experiments.phase_metrics import PhaseMetrics


def resources(pm: PhaseMetrics) -> dict[str, float]:
    hits = pm.delta("gateway", "cache_requests_total", result="hit")
    misses = pm.delta("gateway", "cache_requests_total", result="miss")
    errors = pm.delta("gateway", "cache_requests_total", result="error")
    lookups = hits + misses + errors
    return {
        "cache_hit_ratio": hits / lookups if lookups else float("nan"),
        "orders_rpc_per_request": pm.delta(
            "orders", "rpc_server_duration_seconds_count", rpc_method="GetProduct"
        )
        / pm.requests
        if pm.requests
        else float("nan"),
        "orders_cpu_ms_per_request": 1000
        * pm.delta("orders", "process_cpu_seconds_total")
        / pm.requests
        if pm.requests
        else float("nan"),
    }


EXPERIMENT = Experiment(
    name="cache-impact",
    targets=("local", "kind"),
    title="product reads with and without the Redis cache-aside",
    question="What does the gateway's Redis cache-aside buy for product reads, in latency, "
    "throughput and CPU, at a fixed arrival rate?",
    hypothesis="With the cache most reads of the Zipf-popular products never reach the orders "
    "service and PostgreSQL, so p50/p95 latency and CPU per request drop; the throughput is "
    "the offered rate in both arms (open loop) as long as neither arm saturates.",
    change="gateway CACHE_ENABLED=true (A) vs false (B); the gateway restarts in between",
    arms=[
        Arm("A", "cache on", env={"gateway": {"CACHE_ENABLED": "true"}}),
        Arm("B", "cache off", env={"gateway": {"CACHE_ENABLED": "false"}}),
    ],
    services=("orders", "gateway"),  # reads only: no Kafka, worker or payments
    base_env={
        "gateway": {"RATE_LIMIT_ENABLED": "false", "CACHE_TTL_SECONDS": "60"},
        "payments": {"PAYMENT_DECLINE_RATE": "0"},
    },
    load=LoadProfile(
        journeys={"product": 1}, rate=80, duration_s=40, warmup_s=8, focus="/api/products/{id}"
    ),
    quick_load=LoadProfile(
        journeys={"product": 1}, rate=40, duration_s=12, warmup_s=3, focus="/api/products/{id}"
    ),
    resources=resources,
    headline=(
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "throughput_rps",
        "error_rate",
        "cpu_ms_per_request",
        "orders_rpc_per_request",
        "orders_cpu_ms_per_request",
    ),
    limits=(
        "One read endpoint (GET /api/products/{id}) with Zipf-distributed ids over 10,000 "
        "products; a flatter popularity or a larger catalog lowers the hit ratio and the gain.",
        "A warm cache only: the cold-cache spike with and without stampede protection is the "
        "cache-stampede experiment (make experiment NAME=cache-stampede).",
        "Each phase starts with a cache warmed by the warm-up of the same arm; TTL 60 s, so "
        "expiry refills are part of every phase.",
    ),
)
