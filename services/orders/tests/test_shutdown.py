"""orders on SIGTERM, as `python -m perflab.orders` runs it (`run()`): health turns NOT_SERVING
first, an order being created still gets its answer within the grace period the settings give
(and wakes the outbox relay), and only then do the relay, the fault switches and the database
engine stop, in that order, so the relay is still there for the last order's event.

What is under test is the service's own wiring of the shared serve() (its grace period, its
on_stop), so the repository, the relay, the engine and the fault switches' Redis are fakes and
the test needs no infrastructure. serve() itself is tested in services/common.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import perflab.orders.__main__ as orders_main
from perflab.contracts.orders.v1 import orders_pb2, orders_pb2_grpc
from perflab.dev.serving import ClosingEngine, Served, quiet_fault_switches, served
from perflab.orders.models import Order
from perflab.orders.settings import Settings

WAIT = 30  # seconds: only a bound on a hang; every wait below ends on a condition
ORDERS = orders_pb2.DESCRIPTOR.services_by_name["OrdersService"].full_name


@dataclass
class Fakes:
    """What the service's collaborators did, in order, and an order the test holds."""

    events: list[str] = field(default_factory=list)
    creating: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


class HeldRepository:
    def __init__(self, fakes: Fakes):
        self._fakes = fakes

    async def create_order(
        self, customer_id: str, items: Any, idempotency_key: str = ""
    ) -> tuple[Order, bool]:
        self._fakes.creating.set()
        await self._fakes.release.wait()
        self._fakes.events.append("order created")
        now = datetime.now(UTC)
        order = Order(
            id=uuid.uuid4(),
            customer_id=customer_id,
            status="PENDING",
            total_cents=500,
            currency="EUR",
            created_at=now,
            updated_at=now,
            items=[],
        )
        return order, True


class Relay:
    def __init__(self, fakes: Fakes):
        self._fakes = fakes
        self._stopping = asyncio.Event()

    def notify(self) -> None:
        self._fakes.events.append("relay notified")

    async def run(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        self._fakes.events.append("relay stopped")
        self._stopping.set()


@pytest.fixture
async def orders(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Served, Fakes]]:
    fakes = Fakes()
    monkeypatch.setattr(orders_main, "create_engine", lambda settings: ClosingEngine(fakes.events))
    monkeypatch.setattr(orders_main, "FaultFlags", quiet_fault_switches(fakes.events))
    monkeypatch.setattr(orders_main, "Repository", lambda *args, **kwargs: HeldRepository(fakes))
    monkeypatch.setattr(orders_main, "OutboxRelay", lambda *args, **kwargs: Relay(fakes))
    settings = Settings(
        grpc_host="127.0.0.1", grpc_port=0, shutdown_grace_seconds=WAIT, payment_mode="async"
    )
    async with served(orders_main.run(settings)) as server:
        try:
            yield server, fakes
        finally:
            fakes.release.set()  # a test that left early stops without waiting for grace


async def test_sigterm_turns_health_off_lets_the_order_finish_then_stops_relay_and_clients(
    orders: tuple[Served, Fakes],
) -> None:
    server, fakes = orders
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        serving = await health.Check(health_pb2.HealthCheckRequest(service=ORDERS), timeout=WAIT)
        assert serving.status == health_pb2.HealthCheckResponse.SERVING
        # A Watch opened now sees the flip (a Check sent after SIGTERM races the listener).
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await asyncio.wait_for(watch.read(), WAIT)).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
        request = orders_pb2.CreateOrderRequest(
            customer_id="c1", items=[orders_pb2.CreateOrderItem(product_id=1, quantity=1)]
        )
        create = asyncio.ensure_future(
            orders_pb2_grpc.OrdersServiceStub(channel).CreateOrder(request, timeout=WAIT)
        )
        await asyncio.wait_for(fakes.creating.wait(), WAIT)

        server.sigterm()

        assert (await asyncio.wait_for(watch.read(), WAIT)).status == (
            health_pb2.HealthCheckResponse.NOT_SERVING
        )
        assert not create.done() and not server.task.done() and fakes.events == []
        watch.cancel()  # an open Watch is in-flight work too: it would hold the stop to the end
        fakes.release.set()
        order = await asyncio.wait_for(create, WAIT)
        assert order.customer_id == "c1"
        assert order.status == orders_pb2.ORDER_STATUS_PENDING
    await asyncio.wait_for(server.task, WAIT)
    assert fakes.events == [
        "order created",
        "relay notified",
        "relay stopped",
        "fault switches closed",
        "engine disposed",
    ]
