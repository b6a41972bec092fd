"""The PaymentsService gRPC servicer."""

import asyncio

import grpc

from perflab.common.faults import FaultFlags
from perflab.contracts.payments.v1 import payments_pb2, payments_pb2_grpc
from perflab.payments.ledger import (
    ChargeError,
    ChargeInProgress,
    ChargeMismatch,
    InvalidCharge,
    Ledger,
)

_CODES: dict[type[ChargeError], grpc.StatusCode] = {
    InvalidCharge: grpc.StatusCode.INVALID_ARGUMENT,
    ChargeMismatch: grpc.StatusCode.FAILED_PRECONDITION,
    ChargeInProgress: grpc.StatusCode.ABORTED,  # retryable: the other call will finish
}
_STATUS = {
    "APPROVED": payments_pb2.PAYMENT_STATUS_APPROVED,
    "DECLINED": payments_pb2.PAYMENT_STATUS_DECLINED,
}


class PaymentsServicer(payments_pb2_grpc.PaymentsServiceServicer):
    def __init__(self, ledger: Ledger, faults: FaultFlags):
        self._ledger = ledger
        self._faults = faults

    async def _injected_faults(self, context: grpc.aio.ServicerContext) -> None:
        """Faults act before the ledger is touched, so they never leave a charge half-done."""
        if self._faults.value("payments_unreachable"):
            remaining = context.time_remaining()
            await asyncio.sleep(remaining + 1 if remaining is not None else 3600)
        if self._faults.chance("payments_error_rate"):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "payments failing (injected fault)")
        extra_ms = self._faults.value("payments_latency_ms")
        if extra_ms:
            await asyncio.sleep(extra_ms / 1000)

    async def Charge(
        self, request: payments_pb2.ChargeRequest, context: grpc.aio.ServicerContext
    ) -> payments_pb2.Payment:
        await self._injected_faults(context)
        try:
            result = await self._ledger.charge(
                request.order_id, request.customer_id, request.amount_cents, request.currency
            )
        except ChargeError as exc:
            await context.abort(_CODES[type(exc)], str(exc))
            raise  # unreachable: abort raises
        p = result.payment
        return payments_pb2.Payment(
            id=str(p.id),
            order_id=str(p.order_id),
            status=_STATUS[p.status],
            amount_cents=p.amount_cents,
            currency=p.currency,
            decline_reason=p.decline_reason or "",
            replayed=result.replayed,
        )
