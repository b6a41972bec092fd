"""The Data stores dashboard: Redis and PostgreSQL as the services see them (cache, pools,
database-bound latency) and, on the cluster, their exporters."""

from __future__ import annotations

from dashboards.boards.shared import JAEGER_VARIABLE, lab_dashboard
from dashboards.grafana import (
    Dashboard,
    Row,
    target,
    timeseries,
)
from dashboards.promql import (
    NOT_HEALTH,
    quantile,
    rate,
    sum_rate,
    with_zero,
)

lookups = 'cache_requests_total{job="gateway"}'
pools = 'job=~"orders|payments"'
databases = 'datname=~"orders|payments"'
statement_seconds = sum_rate(f"pg_stat_statements_seconds_total{{{databases}}}", "datname, queryid")
statement_calls = sum_rate(f"pg_stat_statements_calls_total{{{databases}}}", "datname, queryid")


def redis() -> Row:
    return Row(
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


def postgres() -> Row:
    return Row(
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


def redis_server() -> Row:
    return Row(
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


def pg_server() -> Row:
    return Row(
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


def data_stores() -> Dashboard:
    return lab_dashboard(
        uid="perflab-datastores",
        title="perflab / Data stores",
        description="Redis and PostgreSQL as the services see them: cache hit ratio, operations, "
        "stampede protection, connection pools and database-bound latency. Server-side panels "
        "need redis_exporter / postgres_exporter (collapsed rows).",
        sections=[redis(), postgres(), redis_server(), pg_server()],
        variables=[JAEGER_VARIABLE],
    )
