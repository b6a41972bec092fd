"""The payments ledger against real PostgreSQL: one charge per order, whatever happens."""

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from perflab.common.db import create_engine, sessionmaker
from perflab.common.settings import DatabaseSettings
from perflab.payments.ledger import ChargeMismatch, InvalidCharge, Ledger
from perflab.payments.models import Payment
from perflab.payments.processor import Decision, SimulatedProcessor

pytestmark = pytest.mark.integration


class CountingProcessor(SimulatedProcessor):
    def __init__(self, decline_rate: float = 0.0):
        super().__init__(5, 10, decline_rate, rng=random.Random(3))
        self.calls = 0

    async def charge(self, amount_cents: int) -> Decision:
        self.calls += 1
        return await super().charge(amount_cents)


@pytest.fixture
async def engine(payments_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(database_url=payments_db))
    yield engine
    await engine.dispose()


async def test_concurrent_charges_of_one_order_charge_once(engine: AsyncEngine) -> None:
    processor = CountingProcessor()
    ledger = Ledger(sessionmaker(engine), processor, takeover_seconds=30)
    order_id = str(uuid.uuid4())
    outcomes = await asyncio.gather(
        *(ledger.charge(order_id, "c1", 1234, "EUR") for _ in range(10)), return_exceptions=True
    )
    finished = [o for o in outcomes if not isinstance(o, Exception)]
    assert processor.calls == 1
    assert sum(not o.replayed for o in finished) == 1
    # Calls that arrived while the first was charging are told to retry, not charged.
    assert all(type(o).__name__ == "ChargeInProgress" for o in outcomes if isinstance(o, Exception))
    replay = await ledger.charge(order_id, "c1", 1234, "EUR")
    assert replay.replayed and replay.payment.status == "APPROVED"
    async with sessionmaker(engine)() as s:
        assert await s.scalar(select(func.count()).select_from(Payment)) == 1


async def test_declines_are_recorded_and_replayed(engine: AsyncEngine) -> None:
    ledger = Ledger(sessionmaker(engine), CountingProcessor(decline_rate=1.0), takeover_seconds=30)
    order_id = str(uuid.uuid4())
    first = await ledger.charge(order_id, "c1", 500, "EUR")
    assert first.payment.status == "DECLINED" and first.payment.decline_reason
    assert (await ledger.charge(order_id, "c1", 500, "EUR")).payment.status == "DECLINED"


async def test_bad_charges_are_refused(engine: AsyncEngine) -> None:
    ledger = Ledger(sessionmaker(engine), CountingProcessor(), takeover_seconds=30)
    with pytest.raises(InvalidCharge):
        await ledger.charge("not-a-uuid", "c1", 500, "EUR")
    with pytest.raises(InvalidCharge):
        await ledger.charge(str(uuid.uuid4()), "c1", 0, "EUR")
    with pytest.raises(InvalidCharge):
        await ledger.charge(str(uuid.uuid4()), "c1", 10, "euro")
    order_id = str(uuid.uuid4())
    await ledger.charge(order_id, "c1", 500, "EUR")
    with pytest.raises(ChargeMismatch):
        await ledger.charge(order_id, "c1", 501, "EUR")


async def test_a_charge_abandoned_mid_way_is_taken_over(engine: AsyncEngine) -> None:
    sessions = sessionmaker(engine)
    order_id = uuid.uuid4()
    async with sessions() as s, s.begin():
        s.add(
            Payment(
                id=uuid.uuid4(),
                order_id=order_id,
                customer_id="c1",
                amount_cents=700,
                currency="EUR",
                status="PROCESSING",
                updated_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 1),
            )
        )
    processor = CountingProcessor()
    result = await Ledger(sessions, processor, takeover_seconds=30).charge(
        str(order_id), "c1", 700, "EUR"
    )
    assert result.payment.status == "APPROVED" and processor.calls == 1
