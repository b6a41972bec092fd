"""`--target local`: the services' /metrics (and PostgreSQL's activity) sampled once a second
in a thread while a phase runs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import asyncpg

from experiments.phase_metrics import Samples, Snapshot, parse_metrics
from experiments.postgres import ACTIVITY

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
