"""write-load: order creation under rising arrival rates; where does the database become the
limit, and is it the database at all?"""

import math
from typing import Any

from experiments import stats
from experiments.framework import Arm, Experiment, LoadProfile
from experiments.phase_metrics import PhaseMetrics
from experiments.writeup import fmt

RATES = (5, 10, 20, 30, 40, 50)  # orders/s offered, open loop
SERVICES = ("gateway", "orders", "worker", "payments")


def placing(rate: float, duration_s: float = 30, warmup_s: float = 5) -> LoadProfile:
    return LoadProfile(
        journeys={"experiments.journeys:place_order": 1},
        rate=rate,
        duration_s=duration_s,
        warmup_s=warmup_s,
        max_vus=300,
        focus="/api/orders",
    )


def resources(pm: PhaseMetrics) -> dict[str, float]:
    syncs = pm.pg_delta("wal_sync")
    figures = {
        "create_order_p95_ms": 1000
        * pm.quantile("orders", "rpc_server_duration_seconds", 0.95, rpc_method="CreateOrder"),
        "insert_p95_ms": 1000
        * pm.quantile(
            "orders", "db_client_operation_duration_seconds", 0.95, db_operation="INSERT"
        ),
        "pool_wait_p95_ms": 1000
        * pm.quantile("orders", "db_client_connections_wait_time_seconds", 0.95),
        "pool_waiters_mean": pm.gauge("orders", "db_client_connections_pending_requests", "mean"),
        "pool_used_max": pm.gauge("orders", "db_client_connections_usage", "max", state="used"),
        "pg_lock_waiters_mean": pm.gauge("postgres", "pg_lock_waiters", "mean"),
        "pg_active_mean": pm.gauge("postgres", "pg_active_backends", "mean"),
        "commits_per_s": pm.pg_delta("xact_commit") / pm.seconds,
        "wal_fsync_ms": pm.pg_delta("wal_sync_time") / syncs if syncs else math.nan,
        "postgres_cores": pm.pg_delta("postgres_cpu_seconds") / pm.seconds,
    }
    for service in SERVICES:
        figures[f"{service}_cores"] = pm.rate(service, "process_cpu_seconds_total")
    return figures


def _median(records: list[dict[str, Any]], key: str) -> float:
    values = [r.get("resources", {}).get(key, r.get(key)) for r in records]
    return stats.percentile([math.nan if v is None else float(v) for v in values], 50)


def analysis(result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    records = result["records"]
    levels = sorted({float(r["x"]) for r in records})
    rows = {x: [r for r in records if float(r["x"]) == x] for x in levels}
    m = {x: {k: _median(rows[x], k) for k in _COLUMNS} for x in levels}
    lines = [
        "Medians per offered rate (open loop). Cores = CPU seconds per second of the phase.",
        "",
        "| orders/s offered | achieved | p95 ms | errors | pool wait p95 ms | pool waiters | "
        "lock waiters | WAL fsync ms | commits/s | PostgreSQL cores | services cores "
        "(gateway / orders / worker / payments) | host CPU % |",
        "|---" * 12 + "|",
    ]
    for x in levels:
        f = m[x]
        cores = " / ".join(fmt(f[f"{s}_cores"]) for s in SERVICES)
        lines.append(
            f"| {x:g} | {fmt(f['throughput_rps'])} | {fmt(f['p95_ms'])} | {fmt(f['error_rate'])} "
            f"| {fmt(f['pool_wait_p95_ms'])} | {fmt(f['pool_waiters_mean'])} "
            f"| {fmt(f['pg_lock_waiters_mean'])} | {fmt(f['wal_fsync_ms'])} "
            f"| {fmt(f['commits_per_s'])} | {fmt(f['postgres_cores'])} | {cores} "
            f"| {fmt(f['host_cpu_percent'])} |"
        )
    lines.append("")
    base = m[levels[0]]
    limit = next(
        (
            x
            for x in levels
            if m[x]["throughput_rps"] < 0.95 * x
            or m[x]["error_rate"] > 0.01
            or m[x]["p95_ms"] > 3 * base["p95_ms"]
        ),
        None,
    )
    figures: dict[str, Any] = {"limit_rate": limit, "medians": {str(k): v for k, v in m.items()}}
    if limit is None:
        lines.append(
            f"No limit within the measured range: up to {levels[-1]:g} orders/s the offered rate "
            "was achieved with p95 within 3x the lowest rate's."
        )
        return "\n".join(lines), figures
    f = m[limit]
    lines.append(
        f"**The limit**: at {limit:g} orders/s the system no longer keeps up (achieved "
        f"{fmt(f['throughput_rps'])}/s, p95 {fmt(f['p95_ms'])} ms, errors "
        f"{fmt(f['error_rate'])}; at {levels[0]:g}/s p95 was {fmt(base['p95_ms'])} ms)."
    )
    consumers = {s: f[f"{s}_cores"] for s in SERVICES} | {"PostgreSQL": f["postgres_cores"]}
    top = max(consumers, key=lambda k: -1 if math.isnan(consumers[k]) else consumers[k])
    lines.append(
        f"There the host CPU was {fmt(f['host_cpu_percent'])} % busy (load generator included); "
        f"the largest consumer was {top} ({fmt(consumers[top])} cores), PostgreSQL used "
        f"{fmt(f['postgres_cores'])} cores."
    )
    if top in SERVICES and consumers[top] > 0.6:
        lines.append(
            f"A service is one Python process, one event loop: it cannot use more than one core, "
            f"and {top} at {fmt(consumers[top])} cores is close to that ceiling (waiting for "
            "the CPU it shares with everything else makes up the rest). More replicas of it, "
            "or less CPU per order, move this limit; a bigger database would not."
        )
    signs = []
    if f["pool_waiters_mean"] >= 1 or f["pool_wait_p95_ms"] > 10:
        signs.append(
            f"requests queued for a pool connection (p95 wait {fmt(f['pool_wait_p95_ms'])} ms)"
        )
    if f["pg_lock_waiters_mean"] >= 0.5:
        signs.append(f"backends waited on locks ({fmt(f['pg_lock_waiters_mean'])} on average)")
    if base["wal_fsync_ms"] and f["wal_fsync_ms"] > 3 * base["wal_fsync_ms"]:
        signs.append(
            f"WAL fsyncs slowed from {fmt(base['wal_fsync_ms'])} to {fmt(f['wal_fsync_ms'])} ms"
        )
    if signs:
        lines.append("Database-side signs of saturation: " + "; ".join(signs) + ".")
    else:
        lines.append(
            "No database-side sign of saturation: pool waits, lock waits and WAL fsync time "
            "stayed low, so the database was not the limit on this machine; the CPU that the "
            "services (Python) and the load generator need per order was."
        )
    return "\n".join(lines), figures


_COLUMNS = (
    "throughput_rps",
    "p95_ms",
    "error_rate",
    "host_cpu_percent",
    "pool_wait_p95_ms",
    "pool_waiters_mean",
    "pg_lock_waiters_mean",
    "wal_fsync_ms",
    "commits_per_s",
    "postgres_cores",
    *(f"{s}_cores" for s in SERVICES),
)

EXPERIMENT = Experiment(
    name="write-load",
    targets=("local", "kind"),
    title="order creation under rising load: where is the limit?",
    question="How does order creation behave as the arrival rate rises, and where does the "
    "database become the limit: connection-pool waits, lock waits, or commit (WAL fsync) "
    "latency?",
    hypothesis="Each order is one short transaction (order, items, outbox event) plus, later, "
    "the payment result: no row is shared between orders, so lock waits stay near zero; on "
    "2 CPUs the Python services' CPU per order runs out before PostgreSQL does, so latency "
    "breaks while pool waits and fsync times are still low.",
    change="the offered arrival rate of order placements: " + ", ".join(f"{r}/s" for r in RATES),
    arms=[Arm(f"R{r}", f"{r} orders/s", load=placing(r), x=r) for r in RATES],
    base_env={
        "gateway": {"RATE_LIMIT_ENABLED": "false"},
        "payments": {"PAYMENT_DECLINE_RATE": "0"},
    },
    load=placing(RATES[0]),
    quick_load=placing(RATES[0], duration_s=8, warmup_s=2),
    drain_s=180,
    resources=resources,
    analysis=analysis,
    headline=(
        "throughput_rps",
        "p95_ms",
        "error_rate",
        "pool_wait_p95_ms",
        "pg_lock_waiters_mean",
        "wal_fsync_ms",
        "postgres_cores",
    ),
    limits=(
        "Everything (four services, PostgreSQL, Kafka, Redis, the load generator) shares the "
        "same 2 CPUs: a database on its own machine, or services in Go, would move the limit.",
        "Orders never touch the same row (no stock counter), so the lock-wait column cannot "
        "rise here; a hot-row design (inventory decrement) would add it.",
        "PostgreSQL CPU is all of the server's processes, whichever database they serve; "
        "nothing else uses it during a run, but a backend that exits takes its time with it.",
        "WAL fsync time is server-wide (pg_stat_wal, track_wal_io_timing=on in make local); "
        "on this machine's disk fsync is cheap; a slower disk raises commit latency.",
        "Each rate runs the whole pipeline (worker and payments too): the payment results are "
        "writes of their own, as in production.",
    ),
)
