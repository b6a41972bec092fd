"""Fixtures shared by every test suite in the repository (services, e2e, load tests, deploy)."""

from collections.abc import AsyncIterator, Iterator

import pytest

from perflab.dev.infra import ensure_infra, fresh_database, fresh_topics, stop_infra, unique
from perflab.dev.isolated import isolated_stack
from perflab.dev.processes import Infra, ServiceProcesses


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """The real PostgreSQL, Redis and Kafka, started if they are not running, and then
    stopped again at the end of the session (a stack the user started keeps running)."""
    infra = Infra()
    started = ensure_infra(infra)
    yield infra
    if started:
        stop_infra()


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


@pytest.fixture(scope="session")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcesses]:
    """An isolated copy of the whole stack, started once per session when a test asks for it:
    the four services as real processes on free ports, over their own databases, topics and
    Redis prefix, traced into the local Jaeger (the end-to-end and load-test suites use it)."""
    with isolated_stack(
        tmp_path_factory.mktemp("e2e-logs"),
        name="e2e",
        infra=infra,
        products=10_000,  # as `make local` seeds
        trace_sample="1.0",  # the tests look traces up in Jaeger
        extra_env={
            "payments": {
                "PAYMENT_DECLINE_RATE": "0",
                "PAYMENT_LATENCY_MEDIAN_MS": "10",
                "PAYMENT_LATENCY_P99_MS": "40",
            },
            "gateway": {"RATE_LIMIT_ENABLED": "false"},
            "orders": {"DB_POOL_SIZE": "20"},
        },
    ) as stack:
        yield stack


@pytest.fixture(scope="session")
def gateway_url(stack: ServiceProcesses) -> str:
    return f"http://127.0.0.1:{stack.config.ports.gateway}"
