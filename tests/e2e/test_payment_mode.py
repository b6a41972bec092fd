"""PAYMENT_MODE=sync: orders charges inside CreateOrder, and the worker, which still receives
every event, stays the fallback without charging anything twice."""

import asyncio
import math
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from perflab.dev.processes import ServiceProcesses

from .fault_switch import fault_on, metric, until_metric
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


# Messages the worker has finished with (the histogram's count, summed over outcomes).
HANDLED = "messaging_process_duration_seconds_count"


async def test_sync_mode_answers_with_the_paid_order_and_the_worker_charges_nothing_again(
    sync_orders: ServiceProcesses,
    gateway_url: str,
    orders_pg: asyncpg.Connection,
    payments_pg: asyncpg.Connection,
) -> None:
    worker_metrics = sync_orders.config.ports.worker_metrics
    before = await metric(worker_metrics, HANDLED)
    if math.isnan(before):  # nothing handled since the worker started
        before = 0.0
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post("/api/orders", json=order_body("sync", i + 1)) for i in range(20))
        )
    assert [a.status_code for a in answers] == [202] * 20, answers[0].text
    assert {a.json()["status"] for a in answers} == {"PAID"}  # final when the call returns
    ids = [a.json()["id"] for a in answers]
    # The worker has finished with every event (its own would-be charge included).
    await until_metric(worker_metrics, HANDLED, lambda handled: handled - before >= 20)
    assert await charges(payments_pg, ids) == dict.fromkeys(ids, 1)
    orders_metrics = sync_orders.config.ports.orders_metrics
    approved = 'orders_sync_payments_total{result="approved"}'
    paid = await metric(orders_metrics, approved)
    assert paid >= 20


async def test_sync_mode_leaves_the_order_to_the_worker_when_payments_fail(
    sync_orders: ServiceProcesses,
    gateway_url: str,
    orders_pg: asyncpg.Connection,
    payments_pg: asyncpg.Connection,
) -> None:
    payments_metrics = sync_orders.config.ports.payments_metrics
    async with (
        httpx.AsyncClient(timeout=30) as client,
        fault_on(sync_orders, "payments_error_rate", 1, seen_on=payments_metrics),
    ):
        answer = await client.post(f"{gateway_url}/api/orders", json=order_body("defer", 7))
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "PENDING"  # not a 5xx: the queue takes over
    order_id = answer.json()["id"]
    await wait_final(orders_pg, [order_id], timeout=60)  # the worker retries after the fault
    assert await charges(payments_pg, [order_id]) == {order_id: 1}
