"""PAYMENT_MODE=sync when the worker's charge of the same order is in flight: payments answers
ABORTED ("being charged right now") and the channel orders builds for it retries until the
other call has recorded the outcome, so CreateOrder still returns the paid order.

A real grpc.aio server plays payments (the retries are gRPC's, configured on the channel);
the repository is a fake that records what it was asked to apply.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from perflab.common.grpc import insecure_channel
from perflab.contracts.payments.v1 import payments_pb2, payments_pb2_grpc
from perflab.orders.models import Order
from perflab.orders.payment import CHARGE_RETRY_POLICY, SyncPayer


class BusyPayments(payments_pb2_grpc.PaymentsServiceServicer):
    """Answers ABORTED `busy_calls` times (another call holds the claim), then the payment."""

    def __init__(self, busy_calls: int):
        self.busy_calls = busy_calls
        self.calls = 0

    async def Charge(
        self, request: payments_pb2.ChargeRequest, context: grpc.aio.ServicerContext
    ) -> payments_pb2.Payment:
        self.calls += 1
        if self.calls <= self.busy_calls:
            await context.abort(grpc.StatusCode.ABORTED, "being charged right now")
        return payments_pb2.Payment(
            id="pay-1",
            order_id=request.order_id,
            status=payments_pb2.PAYMENT_STATUS_APPROVED,
            amount_cents=request.amount_cents,
            currency=request.currency,
            replayed=True,
        )


class RecordingRepository:
    def __init__(self) -> None:
        self.applied: list[tuple[str, bool, str]] = []

    async def apply_payment_result(
        self, order_id: str, paid: bool, payment_id: str, reason: str
    ) -> Order:
        self.applied.append((order_id, paid, payment_id))
        return order("PAID" if paid else "PAYMENT_FAILED")


ORDER_ID = uuid.uuid4()
NOW = datetime.now(UTC)


def order(status: str) -> Order:
    return Order(
        id=ORDER_ID,
        customer_id="c-1",
        status=status,
        total_cents=500,
        currency="EUR",
        created_at=NOW,
        updated_at=NOW,
        items=[],
    )


@pytest.fixture
async def payments_server() -> AsyncIterator[tuple[grpc.aio.Server, int]]:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    yield server, port
    await server.stop(None)


async def settle(
    server_port: tuple[grpc.aio.Server, int], payments: BusyPayments
) -> tuple[Order, RecordingRepository]:
    server, port = server_port
    payments_pb2_grpc.add_PaymentsServiceServicer_to_server(payments, server)
    await server.start()
    repository = RecordingRepository()
    async with insecure_channel(f"127.0.0.1:{port}", CHARGE_RETRY_POLICY) as channel:
        payer = SyncPayer(payments_pb2_grpc.PaymentsServiceStub(channel), repository, 10)  # type: ignore[arg-type]
        return await payer.settle(order("PENDING"), None), repository


async def test_a_charge_in_flight_elsewhere_is_waited_for_and_the_order_returned_paid(
    payments_server: Any,
) -> None:
    payments = BusyPayments(busy_calls=2)
    order, repository = await settle(payments_server, payments)
    assert order.status == "PAID"
    assert payments.calls == 3
    assert repository.applied == [(str(ORDER_ID), True, "pay-1")]


async def test_a_charge_busy_beyond_the_retries_leaves_the_order_pending_for_the_worker(
    payments_server: Any,
) -> None:
    payments = BusyPayments(busy_calls=100)
    order, repository = await settle(payments_server, payments)
    assert order.status == "PENDING"
    assert payments.calls == 5  # the policy's attempts, then the worker's turn
    assert repository.applied == []
