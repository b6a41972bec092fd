"""The chaos suite: while a steady open-loop load runs, each fault in turn; after each, every
accepted order is final, paid orders are charged exactly once, refusals were 503/504 with a
reason (never another 5xx), and latency came back to its pre-fault level.

CI runs the short version; `make chaos` the full one (CHAOS_FULL=1: 30 s outages, more load).
"""

import os

import asyncpg
import pytest

from perflab.dev.processes import ServiceProcesses

from .chaos import faults, run_fault, table

pytestmark = pytest.mark.e2e
FULL = os.environ.get("CHAOS_FULL") == "1"
OUTAGE = 30.0 if FULL else 8.0
RATE = 20.0 if FULL else 8.0


@pytest.mark.parametrize("fault", faults(OUTAGE), ids=lambda f: f.name)
async def test_the_system_survives(
    stack: ServiceProcesses, fault, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    infra = stack.config.infra

    async def connect(database: str) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=infra.host, port=int(infra.postgres), user="perflab", database=database
        )

    verdict = await run_fault(
        stack,
        fault,
        RATE,
        baseline_seconds=5,
        orders_pg=lambda: connect(stack.config.orders_db),
        payments_pg=lambda: connect(stack.config.payments_db),
    )
    with capsys.disabled():
        print("\n" + table([verdict]))
    assert not verdict.bad_errors, verdict.bad_errors[:5]
    assert verdict.lost == 0, "accepted orders never reached a final status"
    assert verdict.duplicated == 0, "an order was charged more than once (or paid uncharged)"
    assert verdict.recovery_seconds is not None, "latency never came back to its baseline"
    assert verdict.accepted > 0
