"""Faults switched at runtime through the admin API, and the system riding them out."""

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from perflab.common.localstack import LocalStack

from .test_order_pipeline import charges, place, wait_final

pytestmark = pytest.mark.e2e


@pytest.fixture
async def admin(stack: LocalStack) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.config.ports.admin}") as c:
        yield c
        await c.delete("/admin/faults")


async def metric(stack: LocalStack, port: int, name: str) -> float:
    async with httpx.AsyncClient() as c:
        text = (await c.get(f"http://127.0.0.1:{port}/metrics")).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
    return values[0] if values else float("nan")


async def test_the_admin_api_validates_fault_switches(admin: httpx.AsyncClient) -> None:
    listed = (await admin.get("/admin/faults")).json()
    assert {"payments_error_rate", "cache_unavailable", "memory_leak_kb"} <= {
        f["name"] for f in listed
    }
    assert (await admin.put("/admin/faults/nope", json={"value": 1})).status_code == 404
    too_big = await admin.put("/admin/faults/payments_error_rate", json={"value": 2})
    assert too_big.status_code == 422 and "between 0 and 1" in too_big.json()["detail"]


async def test_failing_payments_open_the_breaker_and_orders_wait_until_recovery(
    stack: LocalStack,
    admin: httpx.AsyncClient,
    gateway_url: str,
    orders_pg: asyncpg.Connection,
    payments_pg: asyncpg.Connection,
) -> None:
    put = await admin.put("/admin/faults/payments_error_rate", json={"value": 1})
    assert put.status_code == 200 and put.json()["value"] == 1
    await asyncio.sleep(2)  # services poll the switches every second
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        ids = await place(client, 20, "breaker")
        worker_metrics = stack.config.ports.worker_metrics
        async with asyncio.timeout(30):
            while (
                await metric(stack, worker_metrics, 'circuit_breaker_state{name="payments"}') != 2
            ):
                await asyncio.sleep(0.5)
        pending = await orders_pg.fetchval(
            "SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'PENDING'",
            [uuid.UUID(i) for i in ids],
        )
        assert pending == 20  # nothing charged while payments fails: the orders wait
        assert (await client.get(f"/api/orders/{ids[0]}")).json()["status"] == "PENDING"
        await admin.delete("/admin/faults")
        await wait_final(orders_pg, ids, timeout=90)  # the breaker closes by itself
    assert await charges(payments_pg, ids) == dict.fromkeys(ids, 1)
    assert await metric(stack, worker_metrics, 'circuit_breaker_state{name="payments"}') == 0
