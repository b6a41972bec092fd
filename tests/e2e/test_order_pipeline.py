"""The whole system, end to end: HTTP -> gRPC -> PostgreSQL + outbox -> Kafka -> worker ->
payments -> orders, checked through its public API, its databases, Kafka, Prometheus and Jaeger."""

import asyncio
import signal
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from perflab.dev.processes import ServiceProcesses
from perflab.dev.waiting import until

pytestmark = pytest.mark.e2e

FINAL = ("PAID", "PAYMENT_FAILED")


def order_body(customer: str, product: int = 1) -> dict[str, Any]:
    return {"customer_id": customer, "items": [{"product_id": product, "quantity": 1}]}


async def place(client: httpx.AsyncClient, count: int, customer: str) -> list[str]:
    async def one(i: int) -> str:
        r = await client.post("/api/orders", json=order_body(customer, i % 500 + 1))
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def wait_final(pg: asyncpg.Connection, ids: list[str], timeout: float = 90) -> None:
    uuids = [uuid.UUID(i) for i in ids]

    async def none_pending() -> bool:
        pending = await pg.fetchval(
            "SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'PENDING'", uuids
        )
        return bool(pending == 0)

    await until(none_pending, f"{len(ids)} orders to be final", timeout=timeout)


async def charges(pg: asyncpg.Connection, ids: list[str]) -> dict[str, int]:
    rows = await pg.fetch(
        "SELECT order_id::text AS id, count(*) AS n FROM payments "
        "WHERE order_id = ANY($1) GROUP BY order_id",
        [uuid.UUID(i) for i in ids],
    )
    return {r["id"]: r["n"] for r in rows}


@pytest.fixture
async def client(gateway_url: str) -> Any:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30, limits=limits) as c:
        yield c


async def test_200_concurrent_orders_are_all_paid_and_charged_once(
    client: httpx.AsyncClient, orders_pg: asyncpg.Connection, payments_pg: asyncpg.Connection
) -> None:
    ids = await place(client, 200, "bulk")
    await wait_final(orders_pg, ids)
    statuses = await orders_pg.fetch(
        "SELECT status, count(*) FROM orders WHERE id = ANY($1) GROUP BY status",
        [uuid.UUID(i) for i in ids],
    )
    assert dict(statuses) == {"PAID": 200}  # the decline rate is 0 in this stack
    assert await charges(payments_pg, ids) == dict.fromkeys(ids, 1)
    sample = (await client.get(f"/api/orders/{ids[0]}")).json()
    assert sample["status"] == "PAID"


async def test_a_retried_post_with_the_same_idempotency_key_creates_one_order(
    client: httpx.AsyncClient, orders_pg: asyncpg.Connection
) -> None:
    key = str(uuid.uuid4())
    body = order_body("idem", 3)
    answers = [
        await client.post("/api/orders", json=body, headers={"Idempotency-Key": key})
        for _ in range(3)
    ]
    assert {r.status_code for r in answers} == {202}
    assert len({r.json()["id"] for r in answers}) == 1
    assert await orders_pg.fetchval("SELECT count(*) FROM orders WHERE customer_id = 'idem'") == 1


async def test_a_worker_killed_mid_run_leaves_exactly_one_charge_per_order(
    stack: ServiceProcesses,
    client: httpx.AsyncClient,
    orders_pg: asyncpg.Connection,
    payments_pg: asyncpg.Connection,
) -> None:
    ids = await place(client, 150, "crash")
    uuids = [uuid.UUID(i) for i in ids]

    async def one_final() -> bool:
        return bool(
            await orders_pg.fetchval(
                "SELECT count(*) FROM orders WHERE id = ANY($1) AND status <> 'PENDING'", uuids
            )
        )

    # Let it get going, then pull the plug.
    await until(one_final, "the worker to finish its first order", every=0.02)
    assert stack.stop("worker", signal.SIGKILL) == -signal.SIGKILL
    pending = await orders_pg.fetchval(
        "SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'PENDING'", uuids
    )
    stack.start("worker")
    stack.wait_ready("worker")
    await wait_final(orders_pg, ids)
    assert pending > 0, "the worker finished everything before it was killed: nothing was tested"
    assert await charges(payments_pg, ids) == dict.fromkeys(ids, 1)


async def test_one_trace_spans_all_four_services(
    client: httpx.AsyncClient, orders_pg: asyncpg.Connection, jaeger_url: str
) -> None:
    r = await client.post("/api/orders", json=order_body("traced", 5))
    trace_id = r.headers["x-trace-id"]
    await wait_final(orders_pg, [r.json()["id"]])
    spans: list[tuple[str, str, dict[str, Any]]] = []
    deadline = asyncio.get_running_loop().time() + 60
    async with httpx.AsyncClient(base_url=jaeger_url) as jaeger:
        # Spans arrive in batches, a parent often after its children: wait for the last one.
        while not _complete_order_trace(spans):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(1)
            answer = await jaeger.get(f"/api/traces/{trace_id}")
            if answer.status_code != 200:
                continue
            spans = [
                (
                    trace["processes"][span["processID"]]["serviceName"],
                    span["operationName"],
                    {tag["key"]: tag["value"] for tag in span["tags"]},
                )
                for trace in answer.json().get("data") or []
                for span in trace["spans"]
            ]
    assert _complete_order_trace(spans), sorted({(service, op) for service, op, _ in spans})


def _complete_order_trace(spans: list[tuple[str, str, dict[str, Any]]]) -> bool:
    operations = {(service, op) for service, op, _ in spans}
    # The database work shows too (SQLAlchemy instrumentation), in both services that own one.
    db_services = {s for s, _, tags in spans if tags.get("db.system") == "postgresql"}
    return (
        ("gateway", "POST /api/orders") in operations
        and any(s == "orders" and op.endswith("OrdersService/CreateOrder") for s, op in operations)
        and any(s == "orders" and op.endswith("publish") for s, op in operations)
        and any(s == "worker" and op.endswith("process") for s, op in operations)
        and any(s == "payments" and op.endswith("PaymentsService/Charge") for s, op in operations)
        and any(s == "orders" and op.endswith("ApplyPaymentResult") for s, op in operations)
        and {"orders", "payments"} <= db_services
    )


async def test_prometheus_sees_every_service_and_counts_every_order(
    prometheus: str, orders_pg: asyncpg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=prometheus) as prom, asyncio.timeout(60):
        while True:
            targets = (await prom.get("/api/v1/targets")).json()["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            created = await orders_pg.fetchval("SELECT count(*) FROM orders")
            result = (
                await prom.get("/api/v1/query", params={"query": "sum(orders_created_total)"})
            ).json()["data"]["result"]
            counted = int(float(result[0]["value"][1])) if result else -1
            if set(health.values()) == {"up"} and counted == created:
                break
            await asyncio.sleep(1)
    assert health == dict.fromkeys(["gateway", "orders", "payments", "worker"], "up")
    assert counted == created


@pytest.mark.parametrize(
    ("content", "status", "reason"),
    [
        (b"{not json", 422, "JSON"),
        (b'{"customer_id": "c1", "items": []}', 422, "items"),
        (
            b'{"customer_id": "c1", "items": [{"product_id": 999999, "quantity": 1}]}',
            422,
            "unknown product",
        ),
        (
            b'{"customer_id": "c1", "items": [], "pad": "' + b"x" * 70_000 + b'"}',
            413,
            "larger than",
        ),
    ],
)
async def test_bad_requests_get_a_4xx_with_a_reason(
    client: httpx.AsyncClient, content: bytes, status: int, reason: str
) -> None:
    r = await client.post(
        "/api/orders", content=content, headers={"content-type": "application/json"}
    )
    assert r.status_code == status
    assert reason.lower() in str(r.json()["detail"]).lower()


async def test_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/api/orders/{uuid.uuid4()}")
    assert r.status_code == 404 and "does not exist" in r.json()["detail"]
    assert (await client.get("/api/orders/not-a-uuid")).status_code == 422


async def test_a_poison_message_is_dead_lettered_and_the_pipeline_goes_on(
    stack: ServiceProcesses, client: httpx.AsyncClient, orders_pg: asyncpg.Connection
) -> None:
    topic = f"{stack.config.topic_prefix}orders.created"
    bootstrap = stack.config.infra.kafka_bootstrap
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"\x08\x96\x01 definitely not protobuf", key=b"poison")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic + ".dlq",
        bootstrap_servers=bootstrap,
        group_id=f"dlq-reader-{uuid.uuid4()}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while True:
                message = await consumer.getone()
                if message.key == b"poison":
                    break
    finally:
        await consumer.stop()
    headers = dict(message.headers)
    assert headers["dlq.original.topic"].decode() == topic
    assert headers["dlq.reason"]
    ids = await place(client, 3, "after-poison")
    await wait_final(orders_pg, ids, timeout=30)
