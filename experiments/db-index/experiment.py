"""db-index: customer order history on many orders with and without its index."""

import time

from experiments.framework import Arm, Experiment, LoadProfile, Target
from experiments.phase_metrics import PhaseMetrics

INDEX = "ix_orders_customer_created"
CREATE = f"CREATE INDEX IF NOT EXISTS {INDEX} ON orders (customer_id, created_at, id)"
DROP = f"DROP INDEX IF EXISTS {INDEX}"
CUSTOMERS = 10_000
QUERY = (
    "SELECT * FROM orders WHERE customer_id = 'c4242' "
    "ORDER BY created_at DESC, id DESC LIMIT 11"
)  # what list_customer_orders sends for a first page of 10


def orders_count(ctx: Target) -> int:
    return 200_000 if ctx.quick else 1_000_000


def setup(ctx: Target) -> None:
    """Bulk-loads the orders (without the index, then builds it: much faster than inserting
    through it), then ANALYZE. Only the experiment's own database is touched."""
    n = orders_count(ctx)
    started = time.monotonic()
    ctx.sql(DROP)
    ctx.sql(
        "INSERT INTO orders (id, customer_id, status, total_cents, currency, created_at, "
        "updated_at) SELECT gen_random_uuid(), 'c' || (i % $1), 'PAID', 1000 + i % 9000, "
        "'EUR', now() - make_interval(secs => i), now() - make_interval(secs => i) "
        "FROM generate_series(1, $2) AS i",
        CUSTOMERS,
        n,
    )
    ctx.sql(CREATE)
    ctx.sql("ANALYZE orders")
    ctx.data["seeded_orders"] = n
    ctx.data["seed_seconds"] = round(time.monotonic() - started, 1)
    print(f"   seeded {n:,} orders for {CUSTOMERS:,} customers in {ctx.data['seed_seconds']}s")


def explain(ctx: Target, key: str) -> None:
    rows = ctx.sql(f"EXPLAIN (ANALYZE, BUFFERS) {QUERY}")
    plan = "\n".join(str(next(iter(r.values()))) for r in rows)
    ctx.data.setdefault("plans", {})[key] = plan
    _refresh_markdown(ctx)


def with_index(ctx: Target) -> None:
    started = time.monotonic()
    ctx.sql(CREATE)
    ctx.sql("ANALYZE orders")
    ctx.data.setdefault("index_build_seconds", []).append(round(time.monotonic() - started, 2))
    explain(ctx, "A")


def without_index(ctx: Target) -> None:
    ctx.sql(DROP)
    explain(ctx, "B")


def teardown(ctx: Target) -> None:
    ctx.sql(CREATE)  # leave the schema as the migration made it


def _refresh_markdown(ctx: Target) -> None:
    plans = ctx.data.get("plans", {})
    parts = [
        "## Query plans (EXPLAIN ANALYZE, last time each arm was entered)",
        "",
        f"{ctx.data.get('seeded_orders', 0):,} orders for {CUSTOMERS:,} customers; "
        f"query: `{QUERY}`",
    ]
    for key, title in (("A", "A: with the index"), ("B", "B: without the index")):
        if key in plans:
            parts += ["", f"**{title}**", "", "```", plans[key], "```"]
    ctx.data["report_markdown"] = "\n".join(parts)


def resources(pm: PhaseMetrics) -> dict[str, float]:
    r = pm.requests or float("nan")
    return {
        "seq_scans_per_request": pm.pg_delta("seq_scan") / r,
        "rows_read_per_request": (pm.pg_delta("seq_tup_read") + pm.pg_delta("idx_tup_fetch")) / r,
        "blocks_read_per_request": (pm.pg_delta("blks_read") + pm.pg_delta("blks_hit")) / r,
        "orders_cpu_ms_per_request": 1000 * pm.delta("orders", "process_cpu_seconds_total") / r,
        "postgres_cpu_ms_per_request": 1000 * pm.pg_delta("postgres_cpu_seconds") / r,
    }


EXPERIMENT = Experiment(
    name="db-index",
    title="order history with and without its index",
    question="What does the index ix_orders_customer_created do for the customer order "
    "history on 1,000,000 orders?",
    hypothesis="Without the index every history request scans the whole orders table (about a "
    "million rows read per request), so latency grows by orders of magnitude and the database "
    "CPU becomes the limit; with it a request reads about 11 index entries.",
    change="the index on orders(customer_id, created_at, id) present (A) or dropped (B), by "
    "DDL the experiment applies and reverts on its own database; no restart",
    arms=[
        Arm("A", "with index", enter=with_index),
        Arm("B", "without index", enter=without_index),
    ],
    services=("orders", "gateway"),  # reads only: no Kafka, worker or payments
    base_env={"gateway": {"RATE_LIMIT_ENABLED": "false"}},
    load=LoadProfile(
        journeys={"experiments.journeys:seeded_history": 1},
        rate=4,
        duration_s=40,
        warmup_s=5,
        max_vus=100,
        focus="/api/customers/{id}/orders",
    ),
    quick_load=LoadProfile(
        journeys={"experiments.journeys:seeded_history": 1},
        rate=4,
        duration_s=12,
        warmup_s=3,
        max_vus=100,
        focus="/api/customers/{id}/orders",
    ),
    products=1000,
    targets=("local",),
    skip_reason=lambda target: (
        "db-index loads 1,000,000 orders into the orders database: it runs on the isolated "
        "copy of TARGET=local only, never on the lab's own database on the cluster"
        if target != "local"
        else None
    ),
    setup=setup,
    teardown=teardown,
    resources=resources,
    headline=(
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "throughput_rps",
        "error_rate",
        "rows_read_per_request",
        "seq_scans_per_request",
        "postgres_cpu_ms_per_request",
    ),
    limits=(
        "The rate is kept low (4 requests/s) so that the arm without the index is slow but not "
        "overloaded on this 2-core machine; at a higher rate it would saturate and the latency "
        "ratio would be limited only by the phase length and timeouts.",
        "Synthetic orders: 100 per customer, evenly spread; a skewed distribution changes "
        "the plan of the index-less arm little (it always scans) but the indexed one not at all.",
        "Smoke runs use 200,000 orders, not 1,000,000.",
        "seq_scans_per_request counts scans per process: a parallel sequential scan with two "
        "workers counts 3. orders_cpu_ms_per_request at 4 requests/s is dominated by the "
        "service's background work (outbox relay polling, metrics), not by the query; "
        "postgres_cpu_ms_per_request is the server's (parallel workers included).",
    ),
)
