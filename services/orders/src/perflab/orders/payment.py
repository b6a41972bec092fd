"""`PAYMENT_MODE=sync`: orders charges the new order inside the CreateOrder call instead of
leaving it to the worker, so the caller waits for the payment (the queue-impact experiment's
other arm).

The order and its OrderCreated event are committed first, exactly as in async mode, so the
queue stays the safety net: when the synchronous charge fails or runs out of time the order is
returned PENDING and the worker charges it from the event. When the charge succeeds the worker
still receives the event; both of its calls are idempotent (payments returns the existing
payment, orders only moves a PENDING order), so it changes nothing.

The two can race: when the worker's call claims the order first, payments answers this one
ABORTED ("being charged right now"). gRPC retries it (CHARGE_RETRY_POLICY) until the other
call has recorded its outcome, which this call then returns; only if that takes longer than
the retries is the order left PENDING.
"""

import logging

import grpc
from prometheus_client import Counter
from sqlalchemy.exc import SQLAlchemyError

from perflab.contracts.payments.v1 import payments_pb2, payments_pb2_grpc
from perflab.orders.models import Order
from perflab.orders.repository import Repository

log = logging.getLogger("perflab.orders.payment")

SYNC_PAYMENTS = Counter(
    "orders_sync_payments_total",
    "Charges made inside CreateOrder (PAYMENT_MODE=sync), by result; 'deferred' orders were "
    "left PENDING for the worker.",
    ["result"],
)
for _result in ("approved", "declined", "deferred"):
    SYNC_PAYMENTS.labels(_result)

# Charge is idempotent (the order is the key), so gRPC may retry it. ABORTED means another
# call holds the order's claim; it ends after one processor call (40 ms median by default).
# The backoff is random in [0, 0.1 s], then [0, 0.2 s] and so on: the four retries wait about
# 0.75 s in all, a processor call far in its tail. The channel's deadline still bounds them.
CHARGE_RETRY_POLICY = {
    "methodConfig": [
        {
            "name": [
                {"service": "perflab.contracts.payments.v1.PaymentsService", "method": "Charge"}
            ],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.1s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["ABORTED"],
            },
        }
    ]
}


class SyncPayer:
    def __init__(
        self,
        payments: payments_pb2_grpc.PaymentsServiceStub,
        repository: Repository,
        timeout_seconds: float,
    ):
        self._payments = payments
        self._repo = repository
        self._timeout = timeout_seconds

    async def settle(self, order: Order, time_remaining: float | None) -> Order:
        """Charges `order` and records the outcome; returns the order as it now stands."""
        timeout = self._timeout if time_remaining is None else min(self._timeout, time_remaining)
        request = payments_pb2.ChargeRequest(
            order_id=str(order.id),
            customer_id=order.customer_id,
            amount_cents=order.total_cents,
            currency=order.currency,
        )
        try:
            payment = await self._payments.Charge(request, timeout=max(timeout, 0.001))
        except grpc.aio.AioRpcError as exc:
            return self._defer(order, f"payments.Charge failed with {exc.code().name}")
        approved = payment.status == payments_pb2.PAYMENT_STATUS_APPROVED
        try:
            settled = await self._repo.apply_payment_result(
                str(order.id), approved, payment.id, payment.decline_reason
            )
        except (SQLAlchemyError, OSError) as exc:  # charged; the worker records it later
            return self._defer(order, f"recording the payment failed: {type(exc).__name__}")
        SYNC_PAYMENTS.labels("approved" if approved else "declined").inc()
        return settled

    @staticmethod
    def _defer(order: Order, why: str) -> Order:
        SYNC_PAYMENTS.labels("deferred").inc()
        log.warning("payment left to the worker: %s", why, extra={"order_id": str(order.id)})
        return order
