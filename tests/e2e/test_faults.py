"""Faults switched at runtime through the admin API, and the system riding them out."""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from perflab.dev.processes import ServiceProcesses

from .fault_switch import fault_on, metric, until_metric
from .test_order_pipeline import charges, place, wait_final

pytestmark = pytest.mark.e2e


BREAKER_STATE = 'circuit_breaker_state{name="payments"}'  # 0 closed, 1 half-open, 2 open


@pytest.fixture
async def admin(stack: ServiceProcesses) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.config.ports.admin}") as c:
        try:
            yield c
        finally:
            await c.delete("/admin/faults")


async def test_the_admin_api_validates_fault_switches(admin: httpx.AsyncClient) -> None:
    listed = (await admin.get("/admin/faults")).json()
    assert {"payments_error_rate", "cache_unavailable", "memory_leak_kb"} <= {
        f["name"] for f in listed
    }
    assert (await admin.put("/admin/faults/nope", json={"value": 1})).status_code == 404
    too_big = await admin.put("/admin/faults/payments_error_rate", json={"value": 2})
    assert too_big.status_code == 422 and "between 0 and 1" in too_big.json()["detail"]


async def test_failing_payments_open_the_breaker_and_orders_wait_until_recovery(
    stack: ServiceProcesses,
    gateway_url: str,
    orders_pg: asyncpg.Connection,
    payments_pg: asyncpg.Connection,
) -> None:
    worker_metrics = stack.config.ports.worker_metrics
    payments_metrics = stack.config.ports.payments_metrics
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        async with fault_on(stack, "payments_error_rate", 1, seen_on=payments_metrics) as fault:
            assert fault["value"] == 1
            ids = await place(client, 20, "breaker")
            await until_metric(worker_metrics, BREAKER_STATE, lambda state: state == 2)
            pending = await orders_pg.fetchval(
                "SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'PENDING'",
                [uuid.UUID(i) for i in ids],
            )
            assert pending == 20  # nothing charged while payments fails: the orders wait
            assert (await client.get(f"/api/orders/{ids[0]}")).json()["status"] == "PENDING"
        await wait_final(orders_pg, ids, timeout=90)  # the breaker closes by itself
    assert await charges(payments_pg, ids) == dict.fromkeys(ids, 1)
    assert await metric(worker_metrics, BREAKER_STATE) == 0
