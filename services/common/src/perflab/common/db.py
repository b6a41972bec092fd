"""Async SQLAlchemy engine with tracing and connection-pool metrics."""

from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import QueuePool

from perflab.common.settings import DatabaseSettings

DB_CONNECTIONS_USAGE = Gauge(
    "db_client_connections_usage",
    "Connections in the pool by state (used = checked out by a request).",
    ["state"],
)
DB_CONNECTIONS_MAX = Gauge(
    "db_client_connections_max", "Most connections the pool may open (size + overflow)."
)


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    server_settings = {"application_name": "perflab"}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=True,  # a restarted PostgreSQL costs one failed ping, not a failed request
        connect_args={"server_settings": server_settings},
    )
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, enable_commenter=False)
    pool = engine.sync_engine.pool
    if isinstance(pool, QueuePool):
        DB_CONNECTIONS_USAGE.labels("used").set_function(pool.checkedout)
        DB_CONNECTIONS_USAGE.labels("idle").set_function(pool.checkedin)
        DB_CONNECTIONS_MAX.set(settings.db_pool_size + settings.db_max_overflow)
    return engine


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    return async_sessionmaker(engine, expire_on_commit=False)
