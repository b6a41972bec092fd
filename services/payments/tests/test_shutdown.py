"""payments on SIGTERM, as `python -m perflab.payments` runs it (`run()`): health turns
NOT_SERVING first, a charge in flight still gets its answer within the grace period the
settings give, and only then are the service's clients closed (the fault switches, the
database engine).

What is under test is the service's own wiring of the shared serve() (its interceptors, its
grace period, its on_stop), so the ledger, the engine and the fault switches' Redis are fakes
and the test needs no infrastructure. serve() itself is tested in services/common.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import perflab.payments.__main__ as payments_main
from perflab.contracts.payments.v1 import payments_pb2, payments_pb2_grpc
from perflab.dev.serving import ClosingEngine, Served, quiet_fault_switches, served
from perflab.payments.ledger import ChargeResult
from perflab.payments.models import Payment
from perflab.payments.settings import Settings

WAIT = 30  # seconds: only a bound on a hang; every wait below ends on a condition
PAYMENTS = payments_pb2.DESCRIPTOR.services_by_name["PaymentsService"].full_name


@dataclass
class Fakes:
    """What the service's collaborators did, in order, and a charge the test holds."""

    events: list[str] = field(default_factory=list)
    charging: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


class HeldLedger:
    def __init__(self, fakes: Fakes):
        self._fakes = fakes

    async def charge(
        self, order_id: str, customer_id: str, amount_cents: int, currency: str
    ) -> ChargeResult:
        self._fakes.charging.set()
        await self._fakes.release.wait()
        self._fakes.events.append("charge answered")
        payment = Payment(
            id=uuid.uuid4(),
            order_id=uuid.UUID(order_id),
            customer_id=customer_id,
            amount_cents=amount_cents,
            currency=currency,
            status="APPROVED",
        )
        return ChargeResult(payment, replayed=False)


@pytest.fixture
async def payments(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Served, Fakes]]:
    fakes = Fakes()
    monkeypatch.setattr(
        payments_main, "create_engine", lambda settings: ClosingEngine(fakes.events)
    )
    monkeypatch.setattr(payments_main, "FaultFlags", quiet_fault_switches(fakes.events))
    monkeypatch.setattr(payments_main, "Ledger", lambda *args: HeldLedger(fakes))
    settings = Settings(grpc_host="127.0.0.1", grpc_port=0, shutdown_grace_seconds=WAIT)
    async with served(payments_main.run(settings)) as server:
        try:
            yield server, fakes
        finally:
            fakes.release.set()  # a test that left early stops without waiting for grace


async def test_sigterm_turns_health_off_lets_the_charge_finish_then_closes_the_clients(
    payments: tuple[Served, Fakes],
) -> None:
    server, fakes = payments
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        serving = await health.Check(health_pb2.HealthCheckRequest(service=PAYMENTS), timeout=WAIT)
        assert serving.status == health_pb2.HealthCheckResponse.SERVING
        # A Watch opened now sees the flip (a Check sent after SIGTERM races the listener).
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await asyncio.wait_for(watch.read(), WAIT)).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
        request = payments_pb2.ChargeRequest(
            order_id=str(uuid.uuid4()), customer_id="c1", amount_cents=500, currency="EUR"
        )
        charge = asyncio.ensure_future(
            payments_pb2_grpc.PaymentsServiceStub(channel).Charge(request, timeout=WAIT)
        )
        await asyncio.wait_for(fakes.charging.wait(), WAIT)

        server.sigterm()

        assert (await asyncio.wait_for(watch.read(), WAIT)).status == (
            health_pb2.HealthCheckResponse.NOT_SERVING
        )
        assert not charge.done() and not server.task.done() and fakes.events == []
        watch.cancel()  # an open Watch is in-flight work too: it would hold the stop to the end
        fakes.release.set()
        payment = await asyncio.wait_for(charge, WAIT)
        assert payment.order_id == request.order_id
        assert payment.status == payments_pb2.PAYMENT_STATUS_APPROVED
    await asyncio.wait_for(server.task, WAIT)
    assert fakes.events == ["charge answered", "fault switches closed", "engine disposed"]
