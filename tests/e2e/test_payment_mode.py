"""PAYMENT_MODE=sync: orders charges inside CreateOrder, and the worker, which still receives
every event, stays the fallback without charging anything twice."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from perflab.dev.processes import ServiceProcesses

from .test_faults import metric
from .test_order_pipeline import charges, order_body, wait_final

pytestmark = pytest.mark.e2e


@pytest.fixture
async def sync_orders(stack: ServiceProcesses) -> AsyncIterator[ServiceProcesses]:
    """The stack with orders restarted in sync mode; async again afterwards."""
    before = dict(stack.config.extra_env.get("orders", {}))

    def restart(env: dict[str, str]) -> None:
        stack.stop("orders")
        stack.config.extra_env["orders"] = env
        stack.start("orders")
        stack.wait_ready("orders")

    await asyncio.to_thread(restart, before | {"PAYMENT_MODE": "sync"})
    try:
        yield stack
    finally:
        await asyncio.to_thread(restart, before)


async def consumed(stack: ServiceProcesses) -> float:
    return await metric(stack, stack.config.ports.worker_metrics, "messaging_client_consumed")


async def test_sync_mode_answers_with_the_paid_order_and_the_worker_charges_nothing_again(
    sync_orders: ServiceProcesses,
    gateway_url: str,
    orders_pg: asyncpg.Connection,
    payments_pg: asyncpg.Connection,
) -> None:
    before = await consumed(sync_orders)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post("/api/orders", json=order_body("sync", i + 1)) for i in range(20))
        )
    assert [a.status_code for a in answers] == [202] * 20, answers[0].text
    assert {a.json()["status"] for a in answers} == {"PAID"}  # final when the call returns
    ids = [a.json()["id"] for a in answers]
    async with asyncio.timeout(30):  # the worker has seen every event
        while await consumed(sync_orders) - before < 20:
            await asyncio.sleep(0.2)
    await asyncio.sleep(1)  # and finished the last one
    assert await charges(payments_pg, ids) == dict.fromkeys(ids, 1)
    orders_metrics = sync_orders.config.ports.orders_metrics
    approved = 'orders_sync_payments_total{result="approved"}'
    paid = await metric(sync_orders, orders_metrics, approved)
    assert paid >= 20


async def test_sync_mode_leaves_the_order_to_the_worker_when_payments_fail(
    sync_orders: ServiceProcesses,
    gateway_url: str,
    orders_pg: asyncpg.Connection,
    payments_pg: asyncpg.Connection,
) -> None:
    admin = f"http://127.0.0.1:{sync_orders.config.ports.admin}/admin/faults"
    async with httpx.AsyncClient(timeout=30) as client:
        await client.put(f"{admin}/payments_error_rate", json={"value": 1})
        try:
            await asyncio.sleep(2)  # services poll the switches every second
            answer = await client.post(f"{gateway_url}/api/orders", json=order_body("defer", 7))
            assert answer.status_code == 202, answer.text
            assert answer.json()["status"] == "PENDING"  # not a 5xx: the queue takes over
        finally:
            await client.delete(admin)
    order_id = answer.json()["id"]
    await wait_final(orders_pg, [order_id], timeout=60)  # the worker retries after the fault
    assert await charges(payments_pg, [order_id]) == {order_id: 1}
