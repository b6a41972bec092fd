"""The gateway's Redis features against real Redis: cache-aside, idempotency keys, rate limit,
and what happens when Redis is gone. The orders service is faked (see test_api.FakeOrders)."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from perflab.common.faults import FaultFlags
from perflab.dev.processes import Infra, free_port
from perflab.gateway.app import create_app
from perflab.gateway.clients import Clients
from perflab.gateway.deps import get_clients
from perflab.gateway.settings import Settings

from .test_api import ORDER, FakeOrders

pytestmark = pytest.mark.integration


class SlowOrders(FakeOrders):
    async def _answer(self, request: Any, result: Any) -> Any:
        await asyncio.sleep(0.05)
        return await super()._answer(request, result)


def use_orders(app: FastAPI, orders: FakeOrders) -> None:
    """The lifespan's clients (Redis is real), with `orders` as the orders stub."""
    clients = replace(app.state.clients, orders=orders)

    async def with_fake_orders() -> Clients:
        return clients

    app.dependency_overrides[get_clients] = with_fake_orders


async def gateway(settings: Settings, orders: FakeOrders) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        use_orders(app, orders)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client


@pytest.fixture
def orders() -> SlowOrders:
    return SlowOrders()


def settings_for(infra: Infra, prefix: str, **kw: Any) -> Settings:
    return Settings(redis_url=infra.redis_url, redis_key_prefix=prefix, tracing_enabled=False, **kw)


@pytest.fixture
async def client(
    infra: Infra, redis_prefix: str, orders: SlowOrders
) -> AsyncIterator[httpx.AsyncClient]:
    async for c in gateway(settings_for(infra, redis_prefix), orders):
        yield c


async def test_product_reads_are_cached(client: httpx.AsyncClient, orders: SlowOrders) -> None:
    first = await client.get("/api/products/7")
    second = await client.get("/api/products/7")
    assert first.json() == second.json()
    assert len(orders.requests) == 1


async def test_concurrent_misses_share_one_load(
    client: httpx.AsyncClient, orders: SlowOrders
) -> None:
    answers = await asyncio.gather(*(client.get("/api/products/8") for _ in range(20)))
    assert {r.status_code for r in answers} == {200}
    assert len(orders.requests) == 1


async def test_stampede_protection_can_be_switched_off(
    infra: Infra, redis_prefix: str, orders: SlowOrders
) -> None:
    async for client in gateway(settings_for(infra, redis_prefix, cache_coalesce=False), orders):
        answers = await asyncio.gather(*(client.get("/api/products/8") for _ in range(10)))
    assert {r.status_code for r in answers} == {200}
    assert len(orders.requests) == 10  # every concurrent miss went to the database


async def test_cache_can_be_switched_off(
    infra: Infra, redis_prefix: str, orders: SlowOrders
) -> None:
    async for client in gateway(settings_for(infra, redis_prefix, cache_enabled=False), orders):
        for _ in range(3):
            assert (await client.get("/api/products/9")).status_code == 200
    assert len(orders.requests) == 3


async def test_a_retried_post_with_the_same_key_creates_one_order(
    client: httpx.AsyncClient, orders: SlowOrders
) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    first = await client.post("/api/orders", json=ORDER, headers=headers)
    second = await client.post("/api/orders", json=ORDER, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert len(orders.requests) == 1
    other = await client.post("/api/orders", json={**ORDER, "customer_id": "c2"}, headers=headers)
    assert other.status_code == 422
    assert "different request" in other.json()["detail"]


async def test_clients_over_the_rate_limit_get_429_with_retry_after(
    infra: Infra, redis_prefix: str, orders: SlowOrders
) -> None:
    settings = settings_for(
        infra, redis_prefix, rate_limit_requests=3, rate_limit_window_seconds=60
    )
    async for client in gateway(settings, orders):
        statuses = [
            (await client.get("/api/products/1", headers={"X-Client-Id": "a"})).status_code
            for _ in range(4)
        ]
        limited = await client.get("/api/products/1", headers={"X-Client-Id": "a"})
        other = await client.get("/api/products/1", headers={"X-Client-Id": "b"})
    assert statuses == [200, 200, 200, 429]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "rate limit" in limited.json()["detail"]
    assert other.status_code == 200


async def test_without_redis_reads_and_orders_still_work(orders: SlowOrders) -> None:
    dead = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        redis_timeout_seconds=0.2,
        tracing_enabled=False,
    )
    async for client in gateway(dead, orders):
        assert (await client.get("/api/products/3")).status_code == 200
        posted = await client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": "k"})
        assert posted.status_code == 202
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] is False


async def test_an_injected_cache_outage_reads_through(
    infra: Infra, redis_prefix: str, orders: SlowOrders
) -> None:
    # A long poll period: the background refresh must not undo the local switch mid-test.
    settings = settings_for(infra, redis_prefix, faults_poll_seconds=60)
    faults = FaultFlags(settings)
    app = create_app(settings, faults)
    async with app.router.lifespan_context(app):
        use_orders(app, orders)
        faults.set_local("cache_unavailable", 1)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            for _ in range(3):
                assert (await client.get("/api/products/11")).status_code == 200
    assert len(orders.requests) == 3
