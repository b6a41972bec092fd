"""Idempotent charges. The unique order_id is the idempotency key: the first call claims the
order (status PROCESSING), asks the processor once and records the outcome; every later call
returns the recorded outcome and never charges again."""

import re
import time
import uuid
from dataclasses import dataclass

from prometheus_client import Counter, Histogram
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from perflab.common.db import single_statements
from perflab.common.metrics import observe
from perflab.payments.models import Payment
from perflab.payments.processor import SimulatedProcessor

PAYMENTS = Counter("payments_total", "Charges decided by the processor, by result.", ["result"])
PAYMENT_REPLAYS = Counter("payments_replayed_total", "Charge calls answered from the ledger.")
PROCESSOR_DURATION = Histogram(
    "payment_processor_duration_seconds",
    "Latency of the (simulated) card processor.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

for _result in ("approved", "declined"):
    PAYMENTS.labels(_result)  # the series exist from the start: rate() sees the first charge

CURRENCY = re.compile(r"^[A-Z]{3}$")


class ChargeError(Exception):
    pass


class InvalidCharge(ChargeError):
    pass


class ChargeInProgress(ChargeError):
    """Another call is charging this order right now; the caller should retry later."""


class ChargeMismatch(ChargeError):
    """The order was charged before with a different amount or currency."""


@dataclass(frozen=True)
class ChargeResult:
    payment: Payment
    replayed: bool


class Ledger:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        processor: SimulatedProcessor,
        takeover_seconds: float,
    ):
        self._sessions = sessions
        self._processor = processor
        self._takeover = takeover_seconds

    async def charge(
        self, order_id: str, customer_id: str, amount_cents: int, currency: str
    ) -> ChargeResult:
        try:
            oid = uuid.UUID(order_id)
        except ValueError as exc:
            shown = order_id[:64] + ("..." if len(order_id) > 64 else "")
            raise InvalidCharge(f"order_id is not a UUID: {shown!r}") from exc
        if amount_cents <= 0:
            raise InvalidCharge("amount_cents must be positive")
        if not CURRENCY.fullmatch(currency):
            raise InvalidCharge("currency must be a 3-letter ISO code such as EUR")
        if not 1 <= len(customer_id) <= 64 or "\x00" in customer_id:
            raise InvalidCharge("customer_id must be 1-64 characters, without NUL")

        payment_id = await self._claim(oid, customer_id, amount_cents, currency)
        if payment_id is None:
            existing = await self._existing(oid)
            if (existing.amount_cents, existing.currency) != (amount_cents, currency):
                raise ChargeMismatch(
                    f"order {order_id} was charged before with "
                    f"{existing.amount_cents} {existing.currency}"
                )
            if existing.status != "PROCESSING":
                PAYMENT_REPLAYS.inc()
                return ChargeResult(existing, replayed=True)
            payment_id = await self._take_over_stale(existing.id)
            if payment_id is None:
                raise ChargeInProgress(f"order {order_id} is being charged right now")

        started = time.perf_counter()
        decision = await self._processor.charge(amount_cents)
        observe(PROCESSOR_DURATION, time.perf_counter() - started)
        status = "APPROVED" if decision.approved else "DECLINED"
        async with single_statements(self._sessions) as conn:
            result = await conn.execute(
                _RECORD, {"id": payment_id, "status": status, "reason": decision.reason or None}
            )
            row = result.mappings().one()
        PAYMENTS.labels(status.lower()).inc()
        return ChargeResult(Payment(**row), replayed=False)

    async def _claim(
        self, order_id: uuid.UUID, customer_id: str, amount_cents: int, currency: str
    ) -> uuid.UUID | None:
        async with single_statements(self._sessions) as conn:
            return await conn.scalar(  # type: ignore[no-any-return]
                _CLAIM,
                {
                    "id": uuid.uuid4(),
                    "order_id": order_id,
                    "customer_id": customer_id,
                    "amount_cents": amount_cents,
                    "currency": currency,
                },
            )

    async def _existing(self, order_id: uuid.UUID) -> Payment:
        async with self._sessions() as session:
            payment = await session.scalar(select(Payment).where(Payment.order_id == order_id))
        assert payment is not None  # rows are never deleted
        return payment

    async def _take_over_stale(self, payment_id: uuid.UUID) -> uuid.UUID | None:
        """A PROCESSING row older than the takeover time was left by a crashed call."""
        async with self._sessions() as session, session.begin():
            return await session.scalar(
                update(Payment)
                .where(
                    Payment.id == payment_id,
                    Payment.status == "PROCESSING",
                    Payment.updated_at
                    < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, self._takeover),
                )
                .values(updated_at=func.now())
                .returning(Payment.id)
            )


# Each write below is one statement, run in autocommit (no BEGIN and COMMIT round trips) and
# compiled once: the payments profile showed the ORM's bulk insert and update compiling their
# statement on every charge, and the transaction's round trips, costing more than the writes.

# Claims the order: a row PROCESSING, or no row when the order was claimed before.
_CLAIM = text(
    """
    INSERT INTO payments (id, order_id, customer_id, amount_cents, currency, status)
    VALUES (:id, :order_id, :customer_id, :amount_cents, :currency, 'PROCESSING')
    ON CONFLICT (order_id) DO NOTHING
    RETURNING id
    """
)
# Records the processor's decision on a claimed payment, and returns the payment.
_RECORD = text(
    """
    UPDATE payments SET status = :status, decline_reason = :reason, updated_at = now()
    WHERE id = :id
    RETURNING *
    """
)
