"""`--target local`: the isolated stack an experiment runs against, and what its hooks can do to
it and read from it (the cluster's counterpart is experiments/cluster.py).

`--target local` never touches the lab `make local` runs: the experiment starts its own copy
of the four services on free ports (perflab.dev.isolated) over its own databases, topics
and Redis key prefix on the local infrastructure, and removes all of it at the end. That is how
an experiment "leaves the system as it found it" even when it is interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from experiments.framework import Experiment
from experiments.postgres import PostgresCpu, pg_counters
from experiments.scraper import Scraper
from perflab.dev.infra import forget_redis_prefix
from perflab.dev.isolated import isolated_stack as dev_isolated_stack
from perflab.dev.processes import SERVICES, Infra, ServiceProcesses, missing_infra


class LocalContext:
    """Handed to an experiment's hooks: the stack, SQL on its databases, faults, scratch data."""

    def __init__(self, experiment: Experiment, quick: bool, out_dir: Path, stack: ServiceProcesses):
        self.experiment = experiment
        self.quick = quick
        self.out_dir = out_dir
        self.stack = stack
        self.data: dict[str, Any] = {}  # hooks keep what the report shows (plans, seed timing)
        targets = stack.config.ports.metrics_targets()
        self.postgres_cpu = PostgresCpu()
        self.postgres_cpu.sample()
        self.scraper = Scraper(
            {s: a for s, a in targets.items() if s in stack.processes},
            database=self._connect_args("orders"),
            on_tick=self.postgres_cpu.sample,
        )

    def _connect_args(self, database: str) -> dict[str, Any]:
        config = self.stack.config
        return {
            "host": config.infra.host,
            "port": int(config.infra.postgres),
            "user": "perflab",
            "database": config.orders_db if database == "orders" else config.payments_db,
        }

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.config.ports.gateway}"

    def sql(self, statement: str, *args: Any, database: str = "orders") -> list[dict[str, Any]]:
        """Runs one statement on the stack's own orders (or payments) database."""

        async def run() -> list[dict[str, Any]]:
            conn = await asyncpg.connect(**self._connect_args(database))
            try:
                return [dict(r) for r in await conn.fetch(statement, *args, timeout=600)]
            finally:
                await conn.close()

        return asyncio.run(run())

    def set_fault(self, name: str, value: float) -> None:
        env = {**os.environ, **self.stack.config.env("orders")}
        subprocess.run(
            [sys.executable, "-m", "perflab.common.faults", "set", name, str(value)],
            env=env,
            check=True,
            capture_output=True,
        )

    def flush_cache(self) -> int:
        """Empties the gateway's cache (this stack's keys only); returns how many were removed."""
        config = self.stack.config
        return forget_redis_prefix(config.infra, f"{config.redis_prefix}cache:")

    def apply_env(self, env: dict[str, dict[str, str]]) -> list[str]:
        """Restarts the services whose environment changes; returns their names."""
        running = set(self.stack.processes)
        changed = [
            s
            for s in SERVICES
            if s in running and self.stack.config.extra_env.get(s, {}) != env.get(s, {})
        ]
        for service in reversed([s for s in SERVICES if s in changed]):
            self.stack.stop(service)
        self.stack.config.extra_env = {s: dict(v) for s, v in env.items()}
        for service in [s for s in SERVICES if s in changed]:
            self.stack.start(service)
            self.stack.wait_ready(service)
        return changed

    def pids(self) -> dict[str, int]:
        """The process id of each service running now (it changes when apply_env restarts it)."""
        return {service: process.pid for service, process in self.stack.processes.items()}

    def pg_stats(self) -> dict[str, float]:
        """Counters of the orders database and its orders table (scans, rows read, commits),
        WAL, and PostgreSQL's CPU."""
        figures = pg_counters(self.sql)
        figures["postgres_cpu_seconds"] = self.postgres_cpu.sample()
        return figures


@contextlib.contextmanager
def isolated_stack(
    experiment: Experiment, log_dir: Path, env: dict[str, dict[str, str]]
) -> Iterator[ServiceProcesses]:
    """The services the experiment needs on an isolated copy of the stack (perflab.dev.isolated:
    own databases, topics, Redis prefix and ports; all removed afterwards)."""
    infra = Infra()
    # orders alone retries its relay quietly: Kafka is needed only for the worker
    down = missing_infra(infra, kafka="worker" in experiment.services)
    if down:
        raise SystemExit(
            f"{', '.join(down)} not running: start the local infrastructure "
            "(make local, or scripts/local-infra.sh up)"
        )
    with dev_isolated_stack(
        log_dir,
        name="exp",
        infra=infra,
        services=experiment.services,
        products=experiment.products,
        extra_env=env,
    ) as stack:
        yield stack
