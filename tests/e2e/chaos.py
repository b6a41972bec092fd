"""The chaos suite's machinery: a steady open-loop load, the faults, and the verdict.

Latency is measured from each request's *scheduled* start (open loop), so a stall during a
fault shows in full instead of being hidden by a load generator that waits for it.
"""

import asyncio
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from perflab.dev.processes import ServiceProcesses

REPO = Path(__file__).resolve().parents[2]
ALLOWED_ERRORS = {503, 504}  # retryable, with a reason; anything else 5xx is a defect
# How long the SIGKILLed worker stays dead: a fault's length (orders pile up in Kafka
# meanwhile), like the outages below. Everything the suite waits *for* is polled instead:
# readiness (ServiceProcesses.wait_ready), recovery (run_fault), final orders (_wait_final).
WORKER_DOWN_SECONDS = 2


@dataclass
class Attempt:
    scheduled: float
    latency: float
    status: int | None
    detail: str = ""
    order_id: str | None = None


@dataclass
class OpenLoopLoad:
    base_url: str
    rate: float
    customer: str
    attempts: list[Attempt] = field(default_factory=list)
    started: float = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10, limits=limits) as client:
            self.started = loop.time()
            tasks: set[asyncio.Task[None]] = set()
            i = 0
            while not stop.is_set():
                scheduled = self.started + i / self.rate
                await asyncio.sleep(max(0.0, scheduled - loop.time()))
                task = asyncio.create_task(self._one(client, i, scheduled))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            if tasks:
                await asyncio.gather(*tasks)

    async def _one(self, client: httpx.AsyncClient, i: int, scheduled: float) -> None:
        body = {"customer_id": self.customer, "items": [{"product_id": i % 400 + 1, "quantity": 1}]}
        headers = {"Idempotency-Key": f"{self.customer}-{i}"}
        try:
            r = await client.post("/api/orders", json=body, headers=headers)
            status, payload = r.status_code, r.json()
        except (httpx.HTTPError, ValueError) as exc:
            status, payload = None, {"detail": repr(exc)}
        latency = asyncio.get_running_loop().time() - scheduled
        self.attempts.append(
            Attempt(
                scheduled - self.started,
                latency,
                status,
                str(payload.get("detail", "")) if status != 202 else "",
                payload.get("id") if status == 202 else None,
            )
        )


@dataclass
class Fault:
    name: str
    apply: Callable[[ServiceProcesses], Awaitable[None]]


def infra(command: str, component: str) -> None:
    subprocess.run(
        [str(REPO / "scripts" / "local-infra.sh"), command, component],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def faults(outage_seconds: float) -> list[Fault]:
    """The faults, each undone in `finally`: a test that fails or is interrupted mid-outage
    still leaves the stack whole for the tests after it. Stopping a service happens in a
    thread, so the load's event loop keeps its schedule while the process shuts down."""

    async def kill_worker(stack: ServiceProcesses) -> None:
        await asyncio.to_thread(stack.stop, "worker", signal.SIGKILL)  # returns once it is gone
        try:
            await asyncio.sleep(WORKER_DOWN_SECONDS)
        finally:
            stack.start("worker")
        await asyncio.to_thread(stack.wait_ready, "worker")

    async def restart(component: str) -> None:
        try:
            await asyncio.to_thread(infra, "down", component)
        finally:
            await asyncio.to_thread(infra, "up", component)

    async def stop_payments(stack: ServiceProcesses) -> None:
        await asyncio.to_thread(stack.stop, "payments")
        try:
            await asyncio.sleep(outage_seconds)
        finally:
            stack.start("payments")
        await asyncio.to_thread(stack.wait_ready, "payments")

    async def stop_redis(stack: ServiceProcesses) -> None:
        await asyncio.to_thread(infra, "down", "redis")
        try:
            await asyncio.sleep(outage_seconds / 2)
        finally:
            await asyncio.to_thread(infra, "up", "redis")

    async def restart_kafka(stack: ServiceProcesses) -> None:
        await restart("kafka")

    async def restart_postgres(stack: ServiceProcesses) -> None:
        await restart("postgres")

    return [
        Fault("SIGKILL the worker", kill_worker),
        Fault("restart Kafka", restart_kafka),
        Fault(f"stop payments {outage_seconds:g}s", stop_payments),
        Fault("restart PostgreSQL", restart_postgres),
        Fault(f"stop Redis {outage_seconds / 2:g}s", stop_redis),
    ]


@dataclass
class Verdict:
    fault: str
    accepted: int
    refused: dict[str, int]
    bad_errors: list[str]
    lost: int
    duplicated: int
    recovery_seconds: float | None
    baseline_p95_ms: float

    @property
    def ok(self) -> bool:
        return (
            not self.bad_errors
            and self.lost == 0
            and self.duplicated == 0
            and self.recovery_seconds is not None
        )


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else (values or [0.0])[0]


def recovery(attempts: list[Attempt], fault_end: float, baseline_p95: float) -> float | None:
    """Seconds from the end of the fault to the first of three clean 1 s windows in a row
    (all accepted, p95 back within max(3x baseline, baseline + 100 ms))."""
    bound = max(3 * baseline_p95, baseline_p95 + 0.1)
    windows: dict[int, list[Attempt]] = {}
    for a in attempts:
        if a.scheduled >= fault_end:
            windows.setdefault(int(a.scheduled - fault_end), []).append(a)
    clean = [
        bool(w) and all(a.status == 202 for a in w) and p95([a.latency for a in w]) <= bound
        for w in (windows.get(i, []) for i in range(max(windows, default=-1) + 1))
    ]
    for i in range(len(clean) - 2):
        if clean[i] and clean[i + 1] and clean[i + 2]:
            return float(i)
    return None


async def run_fault(
    stack: ServiceProcesses,
    fault: Fault,
    rate: float,
    baseline_seconds: float,
    orders_pg: Callable[[], Awaitable[asyncpg.Connection]],
    payments_pg: Callable[[], Awaitable[asyncpg.Connection]],
    max_recovery: float = 60,
) -> Verdict:
    load = OpenLoopLoad(
        f"http://127.0.0.1:{stack.config.ports.gateway}", rate, f"chaos-{uuid.uuid4().hex[:8]}"
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(load.run(stop))
    try:
        await asyncio.sleep(baseline_seconds)  # the baseline window, a measurement
        baseline = [a.latency for a in load.attempts if a.status == 202]
        baseline_p95 = p95(baseline)
        await fault.apply(stack)
        fault_end = asyncio.get_running_loop().time() - load.started
        # Polled once per 1 s window; never recovering is a verdict here, not an error.
        deadline = time.monotonic() + max_recovery
        recovered = None
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            recovered = recovery(load.attempts, fault_end, baseline_p95)
            if recovered is not None:
                break
    finally:
        stop.set()
        await runner

    refused: dict[str, int] = {}
    bad: list[str] = []
    for a in load.attempts:
        if a.status != 202:
            refused[str(a.status)] = refused.get(str(a.status), 0) + 1
            if a.status not in ALLOWED_ERRORS or not a.detail:
                bad.append(f"{a.status}: {a.detail[:120]}")
    accepted = [uuid.UUID(a.order_id) for a in load.attempts if a.order_id]
    opg, ppg = await orders_pg(), await payments_pg()
    try:
        lost = await _wait_final(opg, load.customer, accepted)
        # Orders the gateway never confirmed (a 503/504 after the commit) must finish too.
        all_ids = [
            r["id"]
            for r in await opg.fetch("SELECT id FROM orders WHERE customer_id = $1", load.customer)
        ]
        paid = {
            r["id"]
            for r in await opg.fetch(
                "SELECT id FROM orders WHERE customer_id = $1 AND status = 'PAID'", load.customer
            )
        }
        charges = {
            r["order_id"]: r["n"]
            for r in await ppg.fetch(
                "SELECT order_id, count(*) AS n FROM payments WHERE order_id = ANY($1) "
                "AND status <> 'PROCESSING' GROUP BY order_id",
                all_ids,
            )
        }
    finally:
        await opg.close()
        await ppg.close()
    duplicated = sum(n > 1 for n in charges.values()) + sum(charges.get(i, 0) != 1 for i in paid)
    return Verdict(
        fault.name,
        len(accepted),
        refused,
        bad,
        lost,
        duplicated,
        recovered,
        baseline_p95 * 1000,
    )


async def _wait_final(pg: asyncpg.Connection, customer: str, accepted: list[uuid.UUID]) -> int:
    """How many orders of this run are still not final after two minutes ("lost")."""
    deadline = time.monotonic() + 120
    while True:
        pending = await pg.fetchval(
            "SELECT count(*) FROM orders WHERE customer_id = $1 AND status = 'PENDING'", customer
        )
        missing = len(accepted) - await pg.fetchval(
            "SELECT count(*) FROM orders WHERE id = ANY($1)", accepted
        )
        if (pending == 0 and missing == 0) or time.monotonic() > deadline:
            return int(pending + missing)
        await asyncio.sleep(1)


def table(verdicts: list[Verdict]) -> str:
    rows = [
        f"{'fault':24} {'accepted':>8} {'refused':>18} {'lost':>5} {'dup':>4} "
        f"{'recovery':>9} {'base p95':>9}  verdict"
    ]
    for v in verdicts:
        refused = ",".join(f"{k}x{n}" for k, n in sorted(v.refused.items())) or "-"
        rec = f"{v.recovery_seconds:.0f}s" if v.recovery_seconds is not None else "never"
        rows.append(
            f"{v.fault:24} {v.accepted:8d} {refused:>18} {v.lost:5d} {v.duplicated:4d} "
            f"{rec:>9} {v.baseline_p95_ms:7.0f}ms  {'PASS' if v.ok else 'FAIL'}"
        )
    return "\n".join(rows)
