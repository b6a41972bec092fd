"""The isolated stack an experiment runs against, and what it can do to it and read from it.

`--target local` never touches the lab `make local` runs: the experiment starts its own copy
of the four services on free ports (perflab.dev.isolated) over its own databases, topics
and Redis key prefix on the local infrastructure, and removes all of it at the end. That is how
an experiment "leaves the system as it found it" even when it is interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from prometheus_client.parser import text_string_to_metric_families

from experiments import stats
from experiments.framework import Experiment
from perflab.dev.infra import forget_redis_prefix
from perflab.dev.isolated import isolated_stack as dev_isolated_stack
from perflab.dev.processes import SERVICES, Infra, ServiceProcesses, missing_infra

log = logging.getLogger("experiments")

# Sample names kept as a time series during each phase (gauges worth seeing over time).
SERIES = (
    "db_client_connections_usage",
    "db_client_connections_max",
    "db_client_connections_pending_requests",
    "http_server_active_requests",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "outbox_backlog_events",
    "kafka_consumer_lag",
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Sampled once a second: backends of the experiment's database by what they do or wait for.
ACTIVITY = """
SELECT count(*) FILTER (WHERE state = 'active') AS pg_active_backends,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS pg_lock_waiters,
       count(*) FILTER (WHERE wait_event_type = 'IO' OR wait_event LIKE 'WAL%') AS pg_io_waiters
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


def parse_metrics(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return samples


def select(samples: Samples, name: str, labels: dict[str, str]) -> list[float]:
    wanted = set(labels.items())
    return [v for (n, ls), v in samples.items() if n == name and wanted <= ls]


@dataclass
class Snapshot:
    t: float
    services: dict[str, Samples]

    def value(self, service: str, name: str, **labels: str) -> float:
        return sum(select(self.services.get(service, {}), name, labels))


@dataclass
class PhaseMetrics:
    """The services' metrics around one phase: counters as deltas, gauges as series."""

    before: Snapshot
    after: Snapshot
    series: list[Snapshot] = field(default_factory=list)
    requests: int = 0
    pg_before: dict[str, float] = field(default_factory=dict)
    pg_after: dict[str, float] = field(default_factory=dict)

    def delta(self, service: str, name: str, **labels: str) -> float:
        """How much counter `name` grew over the phase, summed over its series as Prometheus'
        increase() does: walking each series through the samples taken during the phase, a
        value lower than the one before is a restart (a new pod, a restarted process) and
        counts from zero; a series that appeared counts whole, one that vanished counts
        what it grew while it was seen."""
        wanted = set(labels.items())

        def matches(key: tuple[str, frozenset[tuple[str, str]]]) -> bool:
            return key[0] == name and wanted <= key[1]

        snapshots = [self.before, *self.series, self.after]
        keys = {
            key
            for snapshot in snapshots
            for key in snapshot.services.get(service, {})
            if matches(key)
        }
        total = 0.0
        for key in keys:
            previous = None
            for snapshot in snapshots:
                value = snapshot.services.get(service, {}).get(key)
                if value is None:
                    continue
                if previous is None:
                    previous = value if snapshot is self.before else 0.0
                total += value - previous if value >= previous else value
                previous = value
        return total

    def gauge(self, service: str, name: str, agg: str = "mean", **labels: str) -> float:
        """Gauge `name` over the phase's samples; samples without it (not yet scraped) are
        left out rather than read as zero."""
        found = (select(s.services.get(service, {}), name, labels) for s in self.series)
        values = [sum(v) for v in found if v]
        if not values:
            return float("nan")
        return max(values) if agg == "max" else sum(values) / len(values)

    def pg_delta(self, key: str) -> float:
        return self.pg_after.get(key, 0.0) - self.pg_before.get(key, 0.0)

    @property
    def seconds(self) -> float:
        """The phase's length between the two snapshots: the divisor of every per-second
        figure (CPU seconds per second = cores)."""
        return max(self.after.t - self.before.t, 1e-9)

    def rate(self, service: str, name: str, **labels: str) -> float:
        """Counter `name` per second over the phase."""
        return self.delta(service, name, **labels) / self.seconds

    def quantile(self, service: str, name: str, q: float, **labels: str) -> float:
        """The q-quantile (0..1) of histogram `name` over the phase (bucket deltas), in the
        histogram's unit; nan when nothing was observed."""
        bounds = {
            dict(ls)["le"]
            for (n, ls) in self.after.services.get(service, {})
            if n == f"{name}_bucket" and set(labels.items()) <= ls
        }
        buckets = [
            (float(le), self.delta(service, f"{name}_bucket", le=le, **labels)) for le in bounds
        ]
        return stats.bucket_quantile(q, buckets)

    def mean(self, service: str, name: str, **labels: str) -> float:
        """Mean of histogram `name` over the phase (sum delta / count delta)."""
        count = self.delta(service, f"{name}_count", **labels)
        return self.delta(service, f"{name}_sum", **labels) / count if count else math.nan


class Scraper:
    """Reads every service's /metrics once a second in a thread while a phase runs."""

    def __init__(
        self,
        targets: dict[str, str],
        interval: float = 1.0,
        database: dict[str, Any] | None = None,
        on_tick: Callable[[], object] | None = None,
    ) -> None:
        self.targets = targets
        self.interval = interval
        self.database = database  # asyncpg.connect() arguments: sample pg_stat_activity too
        self.on_tick = on_tick  # called once a second too (PostgreSQL's CPU)
        self.series: list[Snapshot] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self, names: tuple[str, ...] | None = None) -> Snapshot:
        services: dict[str, Samples] = {}
        for service, address in self.targets.items():
            try:
                with urllib.request.urlopen(f"http://{address}/metrics", timeout=3) as r:
                    samples = parse_metrics(r.read().decode())
            except (OSError, ValueError):
                samples = {}
            if names is not None:
                samples = {k: v for k, v in samples.items() if k[0] in names}
            services[service] = samples
        return Snapshot(time.time(), services)

    def __enter__(self) -> Scraper:
        self.series = []
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        conn = None
        try:
            while not self._stop.wait(self.interval):
                if self.on_tick is not None:
                    self.on_tick()
                snapshot = self.snapshot(SERIES)
                if self.database is not None:
                    try:
                        if conn is None or conn.is_closed():
                            conn = loop.run_until_complete(asyncpg.connect(**self.database))
                        row = loop.run_until_complete(conn.fetchrow(ACTIVITY, timeout=2))
                        snapshot.services["postgres"] = {
                            (k, frozenset()): float(v) for k, v in dict(row or {}).items()
                        }
                    except (OSError, asyncpg.PostgresError, TimeoutError):
                        conn = None
                self.series.append(snapshot)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(conn.close())
            loop.close()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


class RunContext:
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

    def pg_stats(self) -> dict[str, float]:
        """Counters of the orders database and its orders table (scans, rows read, commits),
        WAL, and PostgreSQL's CPU."""
        figures = pg_counters(self.sql)
        figures["postgres_cpu_seconds"] = self.postgres_cpu.sample()
        return figures


# One round trip: the orders table's scans, the database's commits and blocks, and the
# server-wide WAL writes and fsyncs (their times need track_wal_io_timing, in ms).
PG_COUNTERS = """
SELECT t.seq_scan, t.seq_tup_read, coalesce(t.idx_scan, 0) AS idx_scan,
       coalesce(t.idx_tup_fetch, 0) AS idx_tup_fetch,
       d.xact_commit, d.blks_read, d.blks_hit,
       w.wal_records, w.wal_bytes::float8 AS wal_bytes, w.wal_write, w.wal_sync,
       w.wal_write_time, w.wal_sync_time
FROM pg_stat_database d
CROSS JOIN pg_stat_wal w
LEFT JOIN pg_stat_user_tables t ON t.relname = 'orders'
WHERE d.datname = current_database()
"""


def pg_counters(sql: Callable[[str], list[dict[str, Any]]]) -> dict[str, float]:
    """PG_COUNTERS through the target's `sql` (asyncpg locally, kubectl exec on kind)."""
    rows = sql(PG_COUNTERS)
    return {k: float(v) for k, v in (rows[0] if rows else {}).items() if v is not None}


class PostgresCpu:
    """CPU time of the PostgreSQL server's processes (all its backends, whichever database),
    accumulated as a counter. A backend that exits (a pool shrinking back from its overflow)
    takes its CPU time with it, so a plain sum over the live processes can even go down:
    instead each sample adds what every process used since the previous one, and the scraper
    samples once a second, so an exiting backend loses at most its last second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[int, float] | None = None
        self._total = 0.0

    def sample(self) -> float:
        now: dict[int, float] = {}
        for process in psutil.process_iter(["name", "cpu_times"]):
            times = process.info["cpu_times"]
            if process.info["name"] in ("postgres", "postmaster") and times:
                now[process.pid] = times.user + times.system
        with self._lock:
            if self._last is not None:  # the first sample is the zero point
                self._total += sum(
                    max(0.0, cpu - self._last.get(pid, 0.0)) for pid, cpu in now.items()
                )
            self._last = now
            return self._total


# --- the isolated stack ----------------------------------------------------------------------


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
