"""The soak verdict catches the injected memory leak, and passes the system without it.

A short soak (the real one is `make soak`, 30 minutes by default) against the isolated stack,
judged from its own Prometheus exactly as `make soak` judges the local one.
"""

import asyncio
import time

import httpx
import pytest

from loadtests.soak_verdict import memory_verdict, query_range
from perflab.common.localstack import LocalStack

from .chaos import OpenLoopLoad

pytestmark = pytest.mark.e2e
SECONDS = 40


async def soak(stack: LocalStack, prometheus: str, customer: str) -> dict[str, float]:
    start = time.time()
    load = OpenLoopLoad(f"http://127.0.0.1:{stack.config.ports.gateway}", 15, customer)
    stop = asyncio.Event()
    runner = asyncio.create_task(load.run(stop))
    await asyncio.sleep(SECONDS)
    stop.set()
    await runner
    await asyncio.sleep(2)  # the last scrape
    rss = query_range(prometheus, "process_resident_memory_bytes", start, time.time(), step=1)
    assert {"gateway", "orders", "payments", "worker"} <= set(rss)
    return {s: memory_verdict(s, rss[s]).growth_mib for s in rss if s != "prometheus"}


async def test_the_soak_verdict_tells_a_leak_from_a_healthy_system(
    stack: LocalStack, prometheus: str
) -> None:
    healthy = await soak(stack, prometheus, "soak-healthy")
    admin = f"http://127.0.0.1:{stack.config.ports.admin}/admin/faults"
    async with httpx.AsyncClient() as client:
        await client.put(f"{admin}/memory_leak_kb", json={"value": 256})
        try:
            await asyncio.sleep(2)
            leaking = await soak(stack, prometheus, "soak-leak")
        finally:
            await client.delete(admin)
    print(f"\nmemory growth after warm-up, MiB: healthy {healthy}, with the leak {leaking}")
    assert all(growth < 20 for growth in healthy.values()), healthy
    assert leaking["gateway"] > 20, leaking
