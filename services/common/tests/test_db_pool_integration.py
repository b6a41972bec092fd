"""The pool's wait metrics against real PostgreSQL: a request that finds the pool exhausted
shows up as pending while it waits, and its wait lands in the histogram."""

import asyncio

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from perflab.common.db import create_engine
from perflab.common.settings import DatabaseSettings

pytestmark = pytest.mark.integration


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_request_waiting_for_a_connection_is_counted_and_timed(orders_db: str) -> None:
    engine = create_engine(
        DatabaseSettings(database_url=orders_db, db_pool_size=1, db_max_overflow=0)
    )
    slow_bucket = {"le": "0.1"}  # waits of at most 100 ms
    try:
        waits_before = sample("db_client_connections_wait_time_seconds_count")
        slow_before = sample("db_client_connections_wait_time_seconds_bucket", **slow_bucket)
        async with engine.connect() as holder:  # takes the only connection
            await holder.execute(text("SELECT 1"))

            async def second() -> int:
                async with engine.connect() as conn:
                    return int((await conn.execute(text("SELECT 2"))).scalar_one())

            waiter = asyncio.create_task(second())
            for _ in range(100):
                await asyncio.sleep(0.01)
                if sample("db_client_connections_pending_requests") >= 1:
                    break
            assert sample("db_client_connections_pending_requests") == 1
            assert not waiter.done()
            await asyncio.sleep(0.3)  # the waiter queues for at least this long
        assert await waiter == 2
        assert sample("db_client_connections_pending_requests") == 0
        assert sample("db_client_connections_wait_time_seconds_count") - waits_before == 2
        # the first checkout opened a connection quickly; the second waited > 0.3 s
        slow = sample("db_client_connections_wait_time_seconds_bucket", **slow_bucket)
        assert slow - slow_before == 1
    finally:
        await engine.dispose()


async def test_a_connection_the_server_closed_is_replaced_at_checkout(orders_db: str) -> None:
    """What a PostgreSQL restart does to a pooled connection, without a restart: its backend
    is terminated while it sits in the pool. The next request still succeeds."""
    engine = create_engine(
        DatabaseSettings(database_url=orders_db, db_pool_size=1, db_max_overflow=0)
    )
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        killer = create_engine(DatabaseSettings(database_url=orders_db))
        try:
            async with killer.connect() as conn:
                assert (await conn.execute(text(f"SELECT pg_terminate_backend({pid})"))).scalar()
        finally:
            await killer.dispose()
        await asyncio.sleep(0.2)  # the goodbye reaches the pooled connection
        async with engine.connect() as conn:
            new_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert new_pid != pid
    finally:
        await engine.dispose()
