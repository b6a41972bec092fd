"""Fixtures shared by every test suite in the repository (services, e2e, deploy)."""

from collections.abc import AsyncIterator

import pytest

from perflab.common.localstack import Infra
from perflab.testing.infra import ensure_infra, fresh_database, fresh_topics, unique


@pytest.fixture(scope="session")
def infra() -> Infra:
    """The real PostgreSQL, Redis and Kafka, started if they are not running."""
    infra = Infra()
    ensure_infra(infra)
    return infra


@pytest.fixture
async def orders_db(infra: Infra) -> AsyncIterator[str]:
    async with fresh_database(infra, "perflab.orders:migrations") as url:
        yield url


@pytest.fixture
async def payments_db(infra: Infra) -> AsyncIterator[str]:
    async with fresh_database(infra, "perflab.payments:migrations") as url:
        yield url


@pytest.fixture
async def topic_prefix(infra: Infra) -> str:
    return await fresh_topics(infra)


@pytest.fixture
def redis_prefix() -> str:
    return unique() + ":"
