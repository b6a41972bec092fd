"""What the worker does with one OrderCreated event: charge it, then tell orders the outcome.

Both calls are idempotent (payments keys the charge on the order id; orders only moves a
PENDING order), so processing a redelivered event again charges nothing twice. Failures are
split into permanent ones (the message can never succeed: dead-letter it) and transient ones
(a dependency is down or slow: retry with backoff).

Calls to payments go through a circuit breaker: after `breaker_failures` transient failures in
a row it opens, and for `breaker_reset_seconds` the worker does not call payments at all (the
consumer rests the partition, so orders wait in Kafka instead of hammering a sick service);
then one trial call decides whether it closes again.
"""

from datetime import timedelta

import grpc
from aiobreaker import (
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerListener,
    CircuitBreakerState,
)
from google.protobuf.message import DecodeError
from prometheus_client import Counter, Gauge

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


class CircuitOpen(TransientError):
    """The breaker around payments is open: don't retry now, rest and come back."""


BREAKER_STATE = Gauge("circuit_breaker_state", "0 closed, 1 half-open, 2 open.", ["name"])
BREAKER_TRANSITIONS = Counter(
    "circuit_breaker_transitions_total", "Circuit breaker state changes.", ["name", "state"]
)
_STATE_VALUE = {
    CircuitBreakerState.CLOSED: 0,
    CircuitBreakerState.HALF_OPEN: 1,
    CircuitBreakerState.OPEN: 2,
}


class _BreakerMetrics(CircuitBreakerListener):  # type: ignore[misc]
    def state_change(self, breaker: CircuitBreaker, old: object, new: object) -> None:
        state = getattr(new, "state", new)
        BREAKER_STATE.labels(breaker.name).set(_STATE_VALUE.get(state, 0))
        BREAKER_TRANSITIONS.labels(breaker.name, getattr(state, "name", str(state))).inc()


def payments_breaker(failures: int, reset_seconds: float) -> CircuitBreaker:
    def permanent(exc: BaseException) -> bool:
        # Only sickness counts: a rejected request says nothing about the service's health.
        return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in PERMANENT_CODES

    breaker = CircuitBreaker(
        fail_max=failures,
        timeout_duration=timedelta(seconds=reset_seconds),
        exclude=[permanent],
        listeners=[_BreakerMetrics()],
        name="payments",
    )
    BREAKER_STATE.labels("payments").set(0)
    return breaker


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
        breaker: CircuitBreaker | None = None,
    ):
        self._orders = orders
        self._payments = payments
        self._timeout = timeout_seconds
        self._breaker = breaker or payments_breaker(5, 10)

    async def process(self, event: events_pb2.OrderCreated) -> payments_pb2.Payment:
        request = payments_pb2.ChargeRequest(
            order_id=event.order_id,
            customer_id=event.customer_id,
            amount_cents=event.total_cents,
            currency=event.currency,
        )
        try:
            payment = await self._breaker.call_async(
                self._payments.Charge, request, timeout=self._timeout
            )
        except CircuitBreakerError as exc:
            raise CircuitOpen(f"payments circuit open: {exc}") from exc
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
