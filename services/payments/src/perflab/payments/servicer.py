"""The PaymentsService gRPC servicer."""

import grpc

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
    """Charges through the ledger; the injected faults act before it (faults.py)."""

    def __init__(self, ledger: Ledger):
        self._ledger = ledger

    async def Charge(
        self, request: payments_pb2.ChargeRequest, context: grpc.aio.ServicerContext
    ) -> payments_pb2.Payment:
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
