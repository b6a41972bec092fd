"""The payments faults, applied by their interceptor on a real grpc.aio server (a free local
port) in front of a ledger that records its calls: what the caller sees and that the ledger is
never touched by a faulted charge."""

import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from perflab.common.faults import FaultFlags, FaultSettings
from perflab.common.grpc import ServerMetricsInterceptor
from perflab.contracts.payments.v1 import payments_pb2, payments_pb2_grpc
from perflab.payments.faults import InjectedFaults
from perflab.payments.servicer import PaymentsServicer


class RecordingLedger:
    def __init__(self) -> None:
        self.charged: list[str] = []

    async def charge(self, order_id: str, customer_id: str, amount: int, currency: str) -> Any:
        self.charged.append(order_id)
        payment = SimpleNamespace(
            id=uuid.uuid4(), order_id=order_id, status="APPROVED", amount_cents=amount,
            currency=currency, decline_reason=None,
        )  # fmt: skip
        return SimpleNamespace(payment=payment, replayed=False)


@pytest.fixture
def faults() -> FaultFlags:
    return FaultFlags(FaultSettings())


@pytest.fixture
def ledger() -> RecordingLedger:
    return RecordingLedger()


@pytest.fixture
async def channel(faults: FaultFlags, ledger: RecordingLedger) -> AsyncIterator[grpc.aio.Channel]:
    # The interceptors in serve()'s order: metrics (standing for the outer ones), then faults.
    server = grpc.aio.server(interceptors=[ServerMetricsInterceptor(), InjectedFaults(faults)])
    payments_pb2_grpc.add_PaymentsServiceServicer_to_server(
        PaymentsServicer(ledger),  # type: ignore[arg-type]
        server,
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(None)


def charge(order_id: str = "o1") -> payments_pb2.ChargeRequest:
    return payments_pb2.ChargeRequest(
        order_id=order_id, customer_id="c1", amount_cents=500, currency="EUR"
    )


async def test_without_faults_the_charge_reaches_the_ledger(
    channel: grpc.aio.Channel, ledger: RecordingLedger
) -> None:
    payment = await payments_pb2_grpc.PaymentsServiceStub(channel).Charge(charge(), timeout=5)
    assert payment.status == payments_pb2.PAYMENT_STATUS_APPROVED
    assert ledger.charged == ["o1"]


async def test_an_error_rate_of_one_fails_every_charge_before_the_ledger(
    channel: grpc.aio.Channel, faults: FaultFlags, ledger: RecordingLedger
) -> None:
    faults.set_local("payments_error_rate", 1)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await payments_pb2_grpc.PaymentsServiceStub(channel).Charge(charge(), timeout=5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert failed.value.details() == "payments failing (injected fault)"
    assert ledger.charged == []
    # Health checks are not charges: the fault leaves them alone.
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_an_unreachable_payments_hangs_until_the_callers_deadline(
    channel: grpc.aio.Channel, faults: FaultFlags, ledger: RecordingLedger
) -> None:
    faults.set_local("payments_unreachable", 1)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await payments_pb2_grpc.PaymentsServiceStub(channel).Charge(charge(), timeout=0.2)
    assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert ledger.charged == []
