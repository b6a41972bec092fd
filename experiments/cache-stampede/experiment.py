"""cache-stampede: a spike of product reads on a cold cache, with and without the gateway's
stampede protection (request coalescing). The second half of the cache-impact question."""

from experiments.framework import Arm, Experiment, LoadProfile, Target
from experiments.phase_metrics import PhaseMetrics

SLOW_MS = 200  # db_slow_ms: each product lookup holds a connection this long (a heavy page)
CATALOG = 50  # distinct products the spike reads (Zipf popularity): a hot set
POOL = 10  # orders connections: the origin serves at most POOL / SLOW_MS lookups/s
RATE = 150.0


def cold_cache(ctx: Target) -> None:
    removed = ctx.flush_cache()
    ctx.data.setdefault("flushed_keys", []).append(removed)


def resources(pm: PhaseMetrics) -> dict[str, float]:
    lookups = pm.delta("orders", "rpc_server_duration_seconds_count", rpc_method="GetProduct")
    return {
        # the origin's load: with coalescing about one lookup per product and TTL
        "orders_lookups": lookups,
        "orders_lookups_per_request": lookups / pm.requests if pm.requests else float("nan"),
        "coalesced": pm.delta("gateway", "cache_coalesced_total"),
        "orders_pool_waiters_max": pm.gauge(
            "orders", "db_client_connections_pending_requests", "max"
        ),
        "orders_pool_used_max": pm.gauge(
            "orders", "db_client_connections_usage", "max", state="used"
        ),
    }


def spike(duration_s: float) -> LoadProfile:
    return LoadProfile(
        journeys={"product": 1},
        rate=RATE,
        duration_s=duration_s,
        warmup_s=0,  # the point is the cold start: no warm-up
        max_vus=400,
        catalog_size=CATALOG,
        focus="/api/products/{id}",
    )


EXPERIMENT = Experiment(
    name="cache-stampede",
    targets=("local", "kind"),
    title="a spike on a cold cache, with and without stampede protection",
    question="When a spike of product reads meets an empty cache, what does request coalescing "
    "(one origin lookup per key while it is in flight) save the origin, and the users?",
    hypothesis=f"The origin (orders, pool of {POOL}, {SLOW_MS} ms per lookup) serves at most "
    f"{POOL * 1000 // SLOW_MS} lookups/s, less than the spike's {RATE:g} reads/s. Without "
    "coalescing every read of a product whose first lookup is still running misses too and "
    "queues for the pool: the queue makes lookups slower, which keeps keys uncached longer and "
    "lets more misses in (the stampede feeds itself). With coalescing the origin sees about "
    f"one lookup per product ({CATALOG}), and the cold start is over in about "
    f"{CATALOG * SLOW_MS / POOL / 1000:g} s.",
    change="gateway CACHE_COALESCE=true (A) vs false (B); the cache is emptied before every "
    "phase and each phase starts at full rate without warm-up",
    arms=[
        Arm(
            "A",
            "coalescing on",
            env={"gateway": {"CACHE_COALESCE": "true"}},
            before_phase=cold_cache,
        ),
        Arm(
            "B",
            "coalescing off",
            env={"gateway": {"CACHE_COALESCE": "false"}},
            before_phase=cold_cache,
        ),
    ],
    services=("orders", "gateway"),
    base_env={
        "orders": {"DB_POOL_SIZE": str(POOL), "DB_MAX_OVERFLOW": "0"},
        "gateway": {
            "RATE_LIMIT_ENABLED": "false",
            "CACHE_ENABLED": "true",
            "CACHE_TTL_SECONDS": "300",
        },
    },
    base_faults={"db_slow_ms": SLOW_MS},
    load=spike(15),
    quick_load=spike(6),
    resources=resources,
    headline=(
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "error_rate",
        "orders_lookups",
        "orders_lookups_per_request",
        "coalesced",
        "orders_pool_waiters_max",
    ),
    limits=(
        f"The lookup's cost is the db_slow_ms fault ({SLOW_MS} ms of pg_sleep, no CPU): the "
        "real product lookup takes about a millisecond, and with it the window for duplicate "
        "misses (and the saving) would be much smaller.",
        "Coalescing is per gateway process; with N replicas the origin sees up to N lookups "
        "per key (a distributed lock would be needed to go below that).",
        f"One spike shape (0 to {RATE:g} reads/s at once over {CATALOG:,} Zipf-popular "
        "products); the whole phase is measured, so the cold first second is diluted by the "
        "warm rest: the lookup counts show the stampede more directly than p50.",
    ),
)
