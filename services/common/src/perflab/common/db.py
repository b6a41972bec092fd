"""Async SQLAlchemy engine with tracing and connection-pool metrics."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from prometheus_client import Gauge, Histogram
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, QueuePool

from perflab.common.metrics import DB_CLIENT_OPERATION_DURATION, observe
from perflab.common.settings import DatabaseSettings

DB_CONNECTIONS_USAGE = Gauge(
    "db_client_connections_usage",
    "Connections in the pool by state (used = checked out by a request).",
    ["state"],
)
DB_CONNECTIONS_MAX = Gauge(
    "db_client_connections_max", "Most connections the pool may open (size + overflow)."
)

DB_CONNECTIONS_PENDING = Gauge(
    "db_client_connections_pending_requests",
    "Requests waiting for a pool connection right now (opening a new one included).",
)
DB_CONNECTION_WAIT = Histogram(
    "db_client_connections_wait_time_seconds",
    "Time to obtain a connection from the pool: queueing for a free one when the pool is "
    "exhausted, or opening a new one.",
    buckets=(
        *(1e-5, 5e-5, 1e-4, 5e-4),  # an idle connection is handed over in microseconds
        *(1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    ),
)


class WaitTimedPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's async queue pool, plus how many requests wait for a connection and for how
    long. SQLAlchemy has no event for "started waiting", so the checkout itself is timed."""

    def _do_get(self) -> ConnectionPoolEntry:
        DB_CONNECTIONS_PENDING.inc()
        started = time.perf_counter()
        try:
            return super()._do_get()
        finally:
            DB_CONNECTIONS_PENDING.dec()
            DB_CONNECTION_WAIT.observe(time.perf_counter() - started)


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    server_settings = {"application_name": "perflab"}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        poolclass=WaitTimedPool,
        connect_args={"server_settings": server_settings},
    )
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, enable_commenter=False)
    _time_statements(engine)
    _skip_closed_connections(engine)
    pool = engine.sync_engine.pool
    if isinstance(pool, QueuePool):
        DB_CONNECTIONS_USAGE.labels("used").set_function(pool.checkedout)
        DB_CONNECTIONS_USAGE.labels("idle").set_function(pool.checkedin)
        DB_CONNECTIONS_MAX.set(settings.db_pool_size + settings.db_max_overflow)
    return engine


def _skip_closed_connections(engine: AsyncEngine) -> None:
    """A pooled connection the server has closed (PostgreSQL restarted, or the backend was
    terminated) is replaced at checkout, so a restart costs no failed request.

    Instead of `pool_pre_ping`, which on asyncpg is three round trips per checkout (BEGIN, a
    query, ROLLBACK; a third of the orders service's database round trips in its profile):
    asyncpg reads the server's goodbye and the socket's end as they arrive, so a closed
    connection is known locally, without asking the server."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed this pooled connection")


def _time_statements(engine: AsyncEngine) -> None:
    """`db_client_operation_duration_seconds` by operation (SELECT, INSERT, ...), with the
    trace id as exemplar: query latency per statement kind on the dashboards."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _start(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["perflab_started"] = time.perf_counter()  # one statement at a time

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _stop(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info.pop("perflab_started", None)
        if started is None:
            return
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        observe(DB_CLIENT_OPERATION_DURATION, time.perf_counter() - started, db_operation=operation)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def single_statements(
    sessions: async_sessionmaker,  # type: ignore[type-arg]
) -> AsyncIterator[AsyncConnection]:
    """A pooled connection in autocommit mode, for writes that are one statement each (atomic
    on their own): no BEGIN and COMMIT, two round trips fewer per statement than a session's
    transaction. The profiles of orders and payments showed each round trip costing them more
    CPU than PostgreSQL's own work."""
    async with sessions() as session:
        yield await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def unavailable_reason(exc: BaseException) -> str | None:
    """A reason when `exc` means the database is down, restarting or saturated (the caller
    may retry: gRPC UNAVAILABLE, HTTP 503), None for any other error. A restarted PostgreSQL
    or an exhausted pool must reach the client as 503 with a reason, not as UNKNOWN.

    Errors come wrapped by SQLAlchemy (DBAPIError) or, when opening a connection, straight
    from asyncpg; both carry PostgreSQL's SQLSTATE when the server sent one."""
    if isinstance(exc, PoolTimeout):
        return "database connection pool exhausted"
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    if state == "57014":
        return "database query timed out"
    # 08xxx: connection exceptions; 57P0x: admin shutdown, crash shutdown, cannot connect now.
    if state[:2] == "08" or state.startswith("57P"):
        return "database unavailable"
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, InterfaceError)
    ):
        return "database unavailable"
    if type(exc).__module__.startswith("asyncpg") and "InterfaceError" in {
        c.__name__ for c in type(exc).__mro__
    }:
        return "database unavailable"  # e.g. "the underlying connection is closed"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "database unreachable"
    return None
