"""Faults switched on for one block of a test, through the gateway's admin API: on only once
the service that applies the fault exports it (`perflab_fault_value`, refreshed by its poll of
the switches), and off again whatever happens in the block."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from perflab.dev.processes import ServiceProcesses
from perflab.dev.waiting import TIMEOUT, until


async def metric(port: int, name: str) -> float:
    """The sum of the samples named `name` on a /metrics endpoint, NaN when there is none.
    `name` may carry labels exactly as exported (`gauge{fault="x"}`) to pick one series."""
    async with httpx.AsyncClient(timeout=10) as c:
        text = (await c.get(f"http://127.0.0.1:{port}/metrics")).text
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ")
    ]
    return sum(values) if values else float("nan")


async def until_metric(
    port: int, name: str, condition: Callable[[float], bool], timeout: float = TIMEOUT
) -> float:
    """Polls the /metrics endpoint until the sample satisfies `condition`; returns it."""
    seen: list[float] = []

    async def holds() -> bool:
        seen.append(await metric(port, name))
        return condition(seen[-1])

    try:
        await until(holds, f"{name} on :{port} to meet the test's condition", timeout=timeout)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc} (the sample was {seen[-1]:g})") from None
    return seen[-1]


@asynccontextmanager
async def fault_on(
    stack: ServiceProcesses, name: str, value: float, *, seen_on: int
) -> AsyncIterator[dict[str, Any]]:
    """Switches fault `name` to `value`; the block starts once the service whose metrics port
    is `seen_on` applies it, and yields the admin API's answer. Every fault is switched off on
    the way out; after a clean block, also waited for until that service sees it off."""
    admin = f"http://127.0.0.1:{stack.config.ports.admin}/admin/faults"
    gauge = f'perflab_fault_value{{fault="{name}"}}'
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            put = await client.put(f"{admin}/{name}", json={"value": value})
            assert put.status_code == 200, put.text
            await until_metric(seen_on, gauge, lambda v: v == value)
            yield put.json()
        finally:
            (await client.delete(admin)).raise_for_status()
    await until_metric(seen_on, gauge, lambda v: v == 0)
