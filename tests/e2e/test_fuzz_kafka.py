"""Malformed events on `orders.created`: each one goes to the dead-letter topic, the consumer
keeps going, and a normal order placed afterwards is still paid.

`FUZZ_EXAMPLES` sets the number of hypothesis-generated payloads (default 30) on top of the
fixed edge cases (empty, ~100 KB, valid protobuf with missing or impossible fields).
"""

import asyncio
import os
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from perflab.contracts.events.v1 import events_pb2
from perflab.dev.processes import ServiceProcesses
from perflab.dev.waiting import until

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
# The worker stops on purpose after DEAD_LETTER_MAX_CONSECUTIVE (default 20) dead letters in
# a row: so many mean a bug, not bad data. The garbage goes in runs shorter than that.
RUN = 10
PARTITION = 0  # one partition, so the runs and the valid events between them keep their order


def event(**fields: Any) -> bytes:
    return bytes(events_pb2.OrderCreated(**fields).SerializeToString())


# Valid protobuf, but an event the worker can never process: it must be dead-lettered too.
IMPOSSIBLE_EVENTS = st.builds(
    event,
    order_id=st.one_of(st.just(""), st.text(max_size=40), st.uuids().map(str)),
    customer_id=st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)),
    total_cents=st.integers(-(2**63), 2**63 - 1),
    currency=st.sampled_from(["", "EUR", "eur", "EURO"]),
)


def huge(chunk: bytes, size: int) -> bytes:
    return (chunk * (size // len(chunk) + 1))[:size]


GARBAGE = st.one_of(
    st.binary(min_size=1, max_size=300),
    IMPOSSIBLE_EVENTS,
    st.builds(huge, st.binary(min_size=1, max_size=32), st.integers(90_000, 110_000)),
)

FIXED_CASES = [
    b"",
    huge(b"\xff\x00garbage", 100_000),
    event(),  # every field missing: an empty message on the wire
    event(customer_id="c1", total_cents=100, currency="EUR"),  # no order id
    event(order_id=str(uuid.uuid4()), customer_id="c1", currency="EUR"),  # no total
    event(order_id="not-a-uuid", customer_id="c1", total_cents=100, currency="EUR"),
    # well-formed, but the order does not exist (payments charges it, orders says NOT_FOUND)
    event(order_id=str(uuid.uuid4()), customer_id="c1", total_cents=100, currency="EUR"),
    b"\x0a\x02\xff\xfe",  # order_id with invalid UTF-8
]


def generated_garbage(count: int) -> list[bytes]:
    payloads: list[bytes] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(GARBAGE)
    def collect(payload: bytes) -> None:
        payloads.append(payload)

    collect()
    return payloads


async def paid_order(client: httpx.AsyncClient, customer: str) -> dict[str, Any]:
    r = await client.post(
        "/api/orders", json={"customer_id": customer, "items": [{"product_id": 9, "quantity": 1}]}
    )
    assert r.status_code == 202, r.text

    async def final() -> dict[str, Any] | None:
        order: dict[str, Any] = (await client.get(f"/api/orders/{r.json()['id']}")).json()
        return None if order["status"] == "PENDING" else order

    order = await until(final, f"order {r.json()['id']} to be final", timeout=60)
    assert order["status"] == "PAID", order
    return dict(order)


async def dead_letter_keys(
    bootstrap: str, topic: str, expected: set[bytes], timeout: float
) -> dict[bytes, dict[str, bytes]]:
    """The headers of the dead letters among `expected` keys, once all arrived (or timeout)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"dlq-reader-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        fetch_max_bytes=8 * 1024 * 1024,
    )
    found: dict[bytes, dict[str, bytes]] = {}
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            while not expected <= found.keys():
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for message in messages:
                        if message.key is not None and message.key.startswith(b"fuzz-"):
                            found[message.key] = dict(message.headers)
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return found


@pytest.fixture
async def client(gateway_url: str) -> Any:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as c:
        yield c


async def test_garbage_events_are_dead_lettered_and_the_consumer_goes_on(
    stack: ServiceProcesses, client: httpx.AsyncClient
) -> None:
    """Sends empty, huge (~100 KB), random and hypothesis-generated payloads and valid protobuf
    with missing or impossible fields to orders.created. Every one must arrive on
    orders.created.dlq with its origin in the headers, and an order placed afterwards must be
    paid: the consumer did not stop.

    The worker stops by design after DEAD_LETTER_MAX_CONSECUTIVE (default 20) dead letters in
    a row, so the garbage is sent in runs of RUN (10) to one partition, each run followed by a
    valid event: the replay of an already paid order's event, which the worker processes
    idempotently (the charge is replayed, the order stays PAID) and which resets that count.
    """
    topic = f"{stack.config.topic_prefix}orders.created"
    bootstrap = stack.config.infra.kafka_bootstrap
    payloads = FIXED_CASES + generated_garbage(EXAMPLES)
    run_id = uuid.uuid4().hex[:8]
    keys = {f"fuzz-{run_id}-{i}".encode(): p for i, p in enumerate(payloads)}

    paid = await paid_order(client, "fuzz-kafka-before")
    replay = event(
        order_id=paid["id"],
        customer_id=paid["customer_id"],
        total_cents=paid["total_cents"],
        currency=paid["currency"],
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=1024 * 1024)
    await producer.start()
    try:
        for i, (key, payload) in enumerate(keys.items()):
            await producer.send(topic, payload, key=key, partition=PARTITION)
            if i % RUN == RUN - 1:
                await producer.send(topic, replay, key=paid["id"].encode(), partition=PARTITION)
        await producer.flush()
    finally:
        await producer.stop()

    found = await dead_letter_keys(bootstrap, f"{topic}.dlq", set(keys), timeout=90)
    missing = sorted(set(keys) - found.keys())
    assert not missing, f"{len(missing)} of {len(keys)} never reached the dead-letter topic: " + (
        ", ".join(f"{k.decode()}={keys[k][:60]!r}" for k in missing[:10])
    )
    for key in keys:
        assert found[key]["dlq.original.topic"].decode() == topic
        assert found[key]["dlq.reason"], key

    after = await paid_order(client, "fuzz-kafka-after")
    assert after["status"] == "PAID"
