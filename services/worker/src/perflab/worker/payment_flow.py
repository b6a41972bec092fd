"""What the worker does with one OrderCreated event: charge it, then tell orders the outcome.

Both calls are idempotent (payments keys the charge on the order id; orders only moves a
PENDING order), so processing a redelivered event again charges nothing twice. Failures are
split into permanent ones (the message can never succeed: dead-letter it) and transient ones
(a dependency is down or slow: retry with backoff).
"""

import grpc
from google.protobuf.message import DecodeError

from perflab.contracts.events.v1 import events_pb2
from perflab.contracts.orders.v1 import orders_pb2, orders_pb2_grpc
from perflab.contracts.payments.v1 import payments_pb2, payments_pb2_grpc

PERMANENT_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)


class PermanentError(Exception):
    """The message can never be processed; retrying is pointless."""


class TransientError(Exception):
    """A dependency failed in a way that may pass; retry later."""


def parse_event(value: bytes | None) -> events_pb2.OrderCreated:
    if not value:
        raise PermanentError("empty message")
    event = events_pb2.OrderCreated()
    try:
        event.ParseFromString(value)
    except DecodeError as exc:
        raise PermanentError(f"not an OrderCreated protobuf: {exc}") from exc
    if not event.order_id or event.total_cents <= 0:
        raise PermanentError("OrderCreated without order_id or with a non-positive total")
    return event


def classify(exc: grpc.aio.AioRpcError, call: str) -> Exception:
    message = f"{call} failed with {exc.code().name}: {exc.details()}"
    if exc.code() in PERMANENT_CODES:
        return PermanentError(message)
    return TransientError(message)


class PaymentFlow:
    def __init__(
        self,
        orders: orders_pb2_grpc.OrdersServiceStub,
        payments: payments_pb2_grpc.PaymentsServiceStub,
        timeout_seconds: float,
    ):
        self._orders = orders
        self._payments = payments
        self._timeout = timeout_seconds

    async def process(self, event: events_pb2.OrderCreated) -> payments_pb2.Payment:
        try:
            payment = await self._payments.Charge(
                payments_pb2.ChargeRequest(
                    order_id=event.order_id,
                    customer_id=event.customer_id,
                    amount_cents=event.total_cents,
                    currency=event.currency,
                ),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise classify(exc, "payments.Charge") from exc
        approved = payment.status == payments_pb2.PAYMENT_STATUS_APPROVED
        try:
            await self._orders.ApplyPaymentResult(
                orders_pb2.ApplyPaymentResultRequest(
                    order_id=event.order_id,
                    outcome=orders_pb2.PAYMENT_OUTCOME_APPROVED
                    if approved
                    else orders_pb2.PAYMENT_OUTCOME_DECLINED,
                    payment_id=payment.id,
                    reason=payment.decline_reason,
                ),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise classify(exc, "orders.ApplyPaymentResult") from exc
        return payment
