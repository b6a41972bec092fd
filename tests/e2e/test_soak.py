"""The soak verdict catches the injected memory leak, and passes the system without it.

A short soak (the real one is `make soak`, 30 minutes by default) against the isolated stack,
judged from its own Prometheus exactly as `make soak` judges the local one.
"""

import asyncio
import time

import httpx
import pytest

from loadtests.soak_verdict import memory_verdict, query_range
from perflab.dev.processes import SERVICES, ServiceProcesses
from perflab.dev.waiting import until

from .chaos import OpenLoopLoad
from .fault_switch import fault_on

pytestmark = pytest.mark.e2e
SECONDS = 40  # of load per soak: the length of the run judged, not a wait for anything


async def scraped_since(prometheus: str, moment: float) -> bool:
    """Prometheus has scraped every service's memory at or after `moment` (unix time)."""
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(
            f"{prometheus}/api/v1/query",
            params={"query": "timestamp(process_resident_memory_bytes)"},
        )
    r.raise_for_status()
    seen = {m["metric"].get("job"): float(m["value"][1]) for m in r.json()["data"]["result"]}
    return all(seen.get(service, 0) >= moment for service in SERVICES)


async def soak(stack: ServiceProcesses, prometheus: str, customer: str) -> dict[str, float]:
    start = time.time()
    load = OpenLoopLoad(f"http://127.0.0.1:{stack.config.ports.gateway}", 15, customer)
    stop = asyncio.Event()
    runner = asyncio.create_task(load.run(stop))
    try:
        await asyncio.sleep(SECONDS)  # the load itself, not a wait for a condition
    finally:
        stop.set()
        await runner
    end = time.time()
    await until(lambda: scraped_since(prometheus, end), "a scrape of every service after the load")
    rss = query_range(prometheus, "process_resident_memory_bytes", start, time.time(), step=1)
    assert set(SERVICES) <= set(rss)
    return {s: memory_verdict(s, rss[s]).growth_mib for s in rss if s != "prometheus"}


async def test_the_soak_verdict_tells_a_leak_from_a_healthy_system(
    stack: ServiceProcesses, prometheus: str
) -> None:
    healthy = await soak(stack, prometheus, "soak-healthy")
    # The gateway keeps the leak; its /metrics is on its HTTP port.
    async with fault_on(stack, "memory_leak_kb", 256, seen_on=stack.config.ports.gateway):
        leaking = await soak(stack, prometheus, "soak-leak")
    print(f"\nmemory growth after warm-up, MiB: healthy {healthy}, with the leak {leaking}")
    assert all(growth < 20 for growth in healthy.values()), healthy
    assert leaking["gateway"] > 20, leaking
