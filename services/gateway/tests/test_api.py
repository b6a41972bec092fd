"""Unit tests of the HTTP layer with a fake orders stub: status codes and reasons."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.timestamp_pb2 import Timestamp

from perflab.common.faults import FaultFlags, FaultSettings
from perflab.contracts.orders.v1 import orders_pb2
from perflab.gateway.app import create_app
from perflab.gateway.cache import ReadThroughCache
from perflab.gateway.clients import Clients
from perflab.gateway.deps import get_clients
from perflab.gateway.settings import Settings


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def an_order(**kw: Any) -> orders_pb2.Order:
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    return orders_pb2.Order(
        id="0b5c1ad2-6e1a-4a59-9a0e-2f0f3c1f5d11",
        customer_id="c1",
        status=orders_pb2.ORDER_STATUS_PENDING,
        items=[orders_pb2.OrderItem(product_id=1, quantity=2, unit_price_cents=500)],
        total_cents=1000,
        currency="EUR",
        created_at=now,
        updated_at=now,
        **kw,
    )


class FakeOrders:
    def __init__(self) -> None:
        self.error: grpc.aio.AioRpcError | None = None
        self.requests: list[Any] = []

    async def _answer(self, request: Any, result: Any) -> Any:
        self.requests.append(request)
        if self.error:
            raise self.error
        return result

    async def CreateOrder(self, request: Any, timeout: float) -> orders_pb2.Order:
        return await self._answer(request, an_order())  # type: ignore[no-any-return]

    async def GetOrder(self, request: Any, timeout: float) -> orders_pb2.Order:
        return await self._answer(request, an_order())  # type: ignore[no-any-return]

    async def GetProduct(self, request: Any, timeout: float) -> orders_pb2.Product:
        product = orders_pb2.Product(id=request.id, name="x", price_cents=5, currency="EUR")
        return await self._answer(request, product)  # type: ignore[no-any-return]


class NoIdempotency:
    async def lookup(self, key: str, fp: str) -> None:
        return None

    async def save(self, key: str, fp: str, response: bytes) -> None:
        pass


@pytest.fixture
def orders() -> FakeOrders:
    return FakeOrders()


def with_fakes(app: FastAPI, settings: Settings, orders: Any, faults: FaultFlags) -> FastAPI:
    """`app` with fake clients in place of the lifespan's: the given orders stub, the cache
    off, no idempotency store, no rate limit."""
    clients = Clients(
        settings=settings,
        redis=None,  # type: ignore[arg-type]
        orders_channel=None,  # type: ignore[arg-type]
        orders=orders,
        faults=faults,
        product_cache=ReadThroughCache(None, "p", "", 60, enabled=False),  # type: ignore[arg-type]
        idempotency=NoIdempotency(),  # type: ignore[arg-type]
        rate_limiter=None,
    )

    async def fake_clients() -> Clients:  # async: FastAPI runs a plain def in a thread
        return clients

    app.dependency_overrides[get_clients] = fake_clients
    return app


@pytest.fixture
def faults() -> FaultFlags:
    return FaultFlags(FaultSettings())


@pytest.fixture
async def client(orders: FakeOrders, faults: FaultFlags) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(max_body_bytes=1024, tracing_enabled=False)
    app = with_fakes(create_app(settings, faults), settings, orders, faults)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        yield c


ORDER = {"customer_id": "c1", "items": [{"product_id": 1, "quantity": 2}]}


async def test_create_order_answers_202_with_location(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/orders", json=ORDER)
    assert r.status_code == 202
    assert r.headers["location"] == f"/api/orders/{r.json()['id']}"
    assert r.json()["status"] == "PENDING"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "c1", "items": []}, "items"),
        ({"customer_id": "c 1", "items": [{"product_id": 1, "quantity": 1}]}, "customer_id"),
        ({"customer_id": "c1", "items": [{"product_id": 1, "quantity": 0}]}, "quantity"),
        ({"customer_id": "c1", "items": [{"product_id": "x", "quantity": 1}]}, "product_id"),
        ({"items": [{"product_id": 1, "quantity": 1}]}, "customer_id"),
    ],
)
async def test_malformed_orders_get_422_with_the_field(
    client: httpx.AsyncClient, orders: FakeOrders, body: dict[str, Any], field: str
) -> None:
    r = await client.post("/api/orders", json=body)
    assert r.status_code == 422
    assert field in str(r.json()["detail"])
    assert orders.requests == []


async def test_invalid_json_gets_422(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/orders", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


async def test_oversized_bodies_get_413(client: httpx.AsyncClient, orders: FakeOrders) -> None:
    big = {**ORDER, "padding": "x" * 2000}
    r = await client.post("/api/orders", json=big)
    assert r.status_code == 413
    assert "1024 bytes" in r.json()["detail"]
    assert orders.requests == []


async def test_oversized_chunked_bodies_get_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 200

    r = await client.post(
        "/api/orders", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("code", "status", "retry_after"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 422, None),
        (grpc.StatusCode.NOT_FOUND, 404, None),
        (grpc.StatusCode.UNAVAILABLE, 503, "1"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "1"),
        (grpc.StatusCode.INTERNAL, 502, None),
    ],
)
async def test_upstream_errors_map_to_http_with_a_reason(
    client: httpx.AsyncClient,
    orders: FakeOrders,
    code: grpc.StatusCode,
    status: int,
    retry_after: str | None,
) -> None:
    orders.error = rpc_error(code, "unknown product ids: [999]")
    r = await client.post("/api/orders", json=ORDER)
    assert r.status_code == status
    assert r.json()["detail"]
    assert r.headers.get("retry-after") == retry_after
    if status == 422:
        assert r.json()["detail"] == "unknown product ids: [999]"


async def test_path_parameters_are_validated(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/products/0")).status_code == 422
    assert (await client.get("/api/products/abc")).status_code == 422
    assert (await client.get("/api/customers/bad%20id/orders")).status_code == 422
    assert (await client.get("/api/products?page_size=1000")).status_code == 422


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    schema = (await client.get("/openapi.json")).json()
    assert {"/api/orders", "/api/products/{product_id}"} <= set(schema["paths"])


async def test_load_beyond_max_in_flight_is_shed_with_503(orders: FakeOrders) -> None:
    class Slow(FakeOrders):
        async def _answer(self, request: Any, result: Any) -> Any:
            await asyncio.sleep(0.2)
            return result

    settings = Settings(max_in_flight=3, tracing_enabled=False)
    faults = FaultFlags(settings)
    app = with_fakes(create_app(settings, faults), settings, Slow(), faults)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        *answers, probe = await asyncio.gather(
            *(c.get(f"/api/products/{i}") for i in range(1, 11)), c.get("/healthz")
        )
        after = await c.get("/api/products/1")
    assert sorted(r.status_code for r in answers) == [200] * 3 + [503] * 7
    assert probe.status_code == 200  # probes are never shed
    shed = next(r for r in answers if r.status_code == 503)
    assert shed.headers["retry-after"] == "1" and "capacity" in shed.json()["detail"]
    assert after.status_code == 200  # capacity is given back


async def test_injected_cpu_burn_and_memory_leak(
    client: httpx.AsyncClient, faults: FaultFlags
) -> None:
    from perflab.gateway import middleware

    faults.set_local("memory_leak_kb", 64)
    faults.set_local("cpu_burn_ms", 20)
    before = len(middleware.LEAKED)
    started = asyncio.get_running_loop().time()
    for _ in range(3):
        assert (await client.get("/api/products/1")).status_code == 200
    assert len(middleware.LEAKED) - before == 3
    assert len(middleware.LEAKED[-1]) == 64 * 1024
    assert asyncio.get_running_loop().time() - started >= 0.06
    faults.set_local("memory_leak_kb", 0)
    faults.set_local("cpu_burn_ms", 0)


def test_remaining_budget_never_exceeds_the_cap_or_the_deadline() -> None:
    from perflab.gateway.middleware import _deadline, remaining_budget

    assert remaining_budget(3.0) == 3.0  # outside a request
    token = _deadline.set(time.monotonic() + 1.0)
    try:
        assert 0.9 < remaining_budget(3.0) <= 1.0
        assert remaining_budget(0.5) == 0.5
    finally:
        _deadline.reset(token)


def test_every_api_route_is_rate_limited() -> None:
    """The limit is declared per route (product reads combine it with the cache look-up), so
    a route added without it would be unlimited: this catches that."""
    from fastapi.routing import APIRoute

    from perflab.gateway.deps import rate_limit, rate_limit_and_read_product
    from perflab.gateway.routes import router

    def calls(dependant: Any) -> set[Any]:
        found = {dependant.call}
        for sub in dependant.dependencies:
            found |= calls(sub)
        return found

    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 5
    for route in routes:
        assert calls(route.dependant) & {rate_limit, rate_limit_and_read_product}, route.path
