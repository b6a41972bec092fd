"""The orders repository and outbox relay against real PostgreSQL and Kafka."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from perflab.common.db import create_engine, sessionmaker
from perflab.common.settings import DatabaseSettings
from perflab.contracts.events.v1 import events_pb2
from perflab.dev.processes import Infra
from perflab.orders.models import Order, OrderItem, OutboxEvent
from perflab.orders.outbox import OutboxRelay
from perflab.orders.repository import Conflict, InvalidArgument, Limits, NewItem, Repository
from perflab.orders.seed import seed

pytestmark = pytest.mark.integration
LIMITS = Limits(max_items=10, max_quantity=100, max_page_size=50)


@pytest.fixture
async def engine(orders_db: str) -> AsyncIterator[AsyncEngine]:
    await seed(orders_db, products=100)
    engine = create_engine(DatabaseSettings(database_url=orders_db))
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return sessionmaker(engine)


@pytest.fixture
def repo(sessions: async_sessionmaker[AsyncSession]) -> Repository:
    return Repository(sessions, topic="t.orders.created", limits=LIMITS)


async def count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_seed_is_idempotent_and_deterministic(orders_db: str, repo: Repository) -> None:
    assert await seed(orders_db, products=100) == 0
    assert await seed(orders_db, products=120) == 20
    product = await repo.get_product(42)
    assert product.sku == "SKU-00000042"


async def test_an_order_is_saved_with_its_items_and_one_outbox_event(
    repo: Repository, sessions: async_sessionmaker[AsyncSession]
) -> None:
    order, created = await repo.create_order("c1", [NewItem(1, 2), NewItem(5, 1)])
    assert created and order.status == "PENDING"
    p1, p5 = await repo.get_product(1), await repo.get_product(5)
    assert order.total_cents == 2 * p1.price_cents + p5.price_cents
    assert [i.product_id for i in order.items] == [1, 5]
    async with sessions() as s:
        events = (await s.scalars(select(OutboxEvent))).all()
    assert len(events) == 1
    assert events_pb2.OrderCreated.FromString(events[0].payload).order_id == str(order.id)
    assert events[0].key == str(order.id) and events[0].topic == "t.orders.created"
    assert isinstance(events[0].headers, dict)  # the trace context, as a JSON object


async def test_unknown_products_leave_no_trace(
    repo: Repository, sessions: async_sessionmaker[AsyncSession]
) -> None:
    with pytest.raises(InvalidArgument, match=r"unknown product ids: \[999\]"):
        await repo.create_order("c1", [NewItem(1, 1), NewItem(999, 1)])
    for model in (Order, OrderItem, OutboxEvent):
        assert await count(sessions, model) == 0


async def test_the_same_idempotency_key_returns_the_same_order_even_concurrently(
    repo: Repository, sessions: async_sessionmaker[AsyncSession]
) -> None:
    results = await asyncio.gather(
        *(repo.create_order("c1", [NewItem(3, 1)], "key-1") for _ in range(8))
    )
    assert len({order.id for order, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await count(sessions, Order) == 1
    assert await count(sessions, OutboxEvent) == 1
    with pytest.raises(Conflict):
        await repo.create_order("c1", [NewItem(4, 1)], "key-1")


async def test_customer_history_is_newest_first_and_paginated(repo: Repository) -> None:
    created = [(await repo.create_order("c9", [NewItem(i, 1)]))[0].id for i in range(1, 6)]
    await repo.create_order("someone-else", [NewItem(1, 1)])
    page, token = await repo.list_customer_orders("c9", 2, "")
    seen = [o.id for o in page]
    while token:
        page, token = await repo.list_customer_orders("c9", 2, token)
        seen += [o.id for o in page]
    assert seen == list(reversed(created))
    with pytest.raises(InvalidArgument):
        await repo.list_customer_orders("c9", 2, "garbage")


async def test_catalog_pages_by_category(repo: Repository) -> None:
    products, token = await repo.list_products("books", 5, "")
    assert [p.category for p in products] == ["books"] * 5
    more, _ = await repo.list_products("books", 5, token)
    assert more[0].id > products[-1].id


async def test_payment_results_apply_once(repo: Repository) -> None:
    order, _ = await repo.create_order("c1", [NewItem(2, 1)])
    paid = await repo.apply_payment_result(str(order.id), True, "pay-1", "")
    assert paid.status == "PAID"
    again = await repo.apply_payment_result(str(order.id), False, "pay-2", "declined")
    assert again.status == "PAID" and again.failure_reason is None


def as_stored(order: Order) -> tuple[object, ...]:
    return (
        order.id, order.customer_id, order.status, order.total_cents, order.currency,
        order.payment_id, order.failure_reason, order.created_at, order.updated_at,
        [(i.product_id, i.quantity, i.unit_price_cents) for i in order.items],
    )  # fmt: skip


async def test_the_orders_returned_without_a_read_back_are_what_the_database_holds(
    repo: Repository,
) -> None:
    created, _ = await repo.create_order("c1", [NewItem(7, 3), NewItem(3, 1)])
    assert as_stored(created) == as_stored(await repo.get_order(str(created.id)))
    declined = await repo.apply_payment_result(str(created.id), False, "pay-9", "card declined")
    assert declined.status == "PAYMENT_FAILED" and declined.failure_reason == "card declined"
    assert as_stored(declined) == as_stored(await repo.get_order(str(created.id)))


async def test_relay_publishes_outbox_events_to_kafka_and_empties_the_outbox(
    infra: Infra, topic_prefix: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    topic = f"{topic_prefix}orders.created"
    repo = Repository(sessions, topic=topic, limits=LIMITS)
    ids = {str((await repo.create_order(f"c{i}", [NewItem(i, 1)]))[0].id) for i in range(1, 6)}
    relay = OutboxRelay(
        sessions,
        lambda: AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, enable_idempotence=True),
        batch_size=2,
        poll_interval=0.05,
    )
    task = asyncio.create_task(relay.run())
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=infra.kafka_bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        received: dict[str, dict[str, bytes]] = {}
        async with asyncio.timeout(30):
            while len(received) < len(ids):
                message = await consumer.getone()
                event = events_pb2.OrderCreated.FromString(message.value)
                received[event.order_id] = dict(message.headers)
    finally:
        await consumer.stop()
        await relay.stop()
        await task
    assert set(received) == ids
    assert await count(sessions, OutboxEvent) == 0
