"""What the experiments read from PostgreSQL: the per-second activity sample (backends by what
they wait for), the counters of the orders database, its table and the WAL, and the server's
CPU time from the host's process table."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psutil

# Sampled once a second: backends of the experiment's database by what they do or wait for.
ACTIVITY = """
SELECT count(*) FILTER (WHERE state = 'active') AS pg_active_backends,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS pg_lock_waiters,
       count(*) FILTER (WHERE wait_event_type = 'IO' OR wait_event LIKE 'WAL%') AS pg_io_waiters
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


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
