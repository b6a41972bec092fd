"""Figures the runner keeps beside Locust's request statistics: iterations, dropped iterations,
iteration durations and checks. Pure Python (no Locust), shared by the runner, the Prometheus
exporter and the summary.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


def round_ms(ms: float) -> int:
    """Round a duration like Locust does (two significant digits above 100 ms) to bound memory."""
    if ms < 100:
        return round(ms)
    return int(round(ms, -1 if ms < 1000 else -2 if ms < 10000 else -3))


class Histogram:
    """Durations in milliseconds, kept as counts of rounded values (a ``Trend`` for thresholds)."""

    def __init__(self) -> None:
        self.values: Counter[int] = Counter()
        self.count = 0
        self.total = 0.0
        self._min = float("inf")
        self._max = 0.0

    def add(self, ms: float) -> None:
        self.values[round_ms(ms)] += 1
        self.count += 1
        self.total += ms
        self._min = min(self._min, ms)
        self._max = max(self._max, ms)

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def min(self) -> float:
        return self._min if self.count else 0.0

    @property
    def max(self) -> float:
        return self._max

    def percentile(self, p: float) -> float:
        """The smallest (rounded) value with at least ``p`` percent of samples at or below it."""
        if not self.count:
            return 0.0
        rank = max(1, -(-self.count * p // 100))  # ceil without float drift for whole counts
        seen = 0
        for value in sorted(self.values):
            seen += self.values[value]
            if seen >= rank:
                return float(value)
        return float(max(self.values))


@dataclass
class RunState:
    """Everything the executors count that Locust does not."""

    started: float = field(default_factory=time.monotonic)
    iterations: Counter[str] = field(default_factory=Counter)  # journey -> started iterations
    interrupted: int = 0
    dropped: int = 0
    iteration_duration: dict[str, Histogram] = field(default_factory=dict)
    checks: dict[str, list[int]] = field(default_factory=dict)  # name -> [passes, fails]
    vus_busy: int = 0
    vus_max_used: int = 0
    _recent_starts: deque[float] = field(default_factory=deque)

    def iteration_started(self, journey: str, now: float | None = None) -> None:
        self.iterations[journey] += 1
        self._recent_starts.append(time.monotonic() if now is None else now)

    def iteration_finished(self, journey: str, duration_ms: float) -> None:
        self.iteration_duration.setdefault(journey, Histogram()).add(duration_ms)

    def check(self, name: str, ok: bool) -> None:
        self.checks.setdefault(name, [0, 0])[0 if ok else 1] += 1

    def recent_start_rate(self, window: float = 5.0, now: float | None = None) -> float:
        """Iterations started per second over the last ``window`` seconds (the achieved rate)."""
        now = time.monotonic() if now is None else now
        while self._recent_starts and self._recent_starts[0] < now - window:
            self._recent_starts.popleft()
        span = min(window, max(now - self.started, 1e-9))
        return len(self._recent_starts) / span

    def export(self) -> dict[str, Any]:
        """Cumulative figures as plain data (a worker sends them to the master with its stats)."""
        return {
            "iterations": dict(self.iterations),
            "interrupted": self.interrupted,
            "dropped": self.dropped,
            "busy": self.vus_busy,
            "checks": {name: list(counts) for name, counts in self.checks.items()},
            "durations": {
                journey: {
                    "values": {str(k): n for k, n in h.values.items()},
                    "count": h.count,
                    "total": h.total,
                    "min": h.min,
                    "max": h.max,
                }
                for journey, h in self.iteration_duration.items()
            },
        }

    def absorb(self, exports: list[dict[str, Any]], now: float | None = None) -> None:
        """Become the sum of the workers' latest exports (the master's view)."""
        before = sum(self.iterations.values())
        self.iterations = Counter()
        self.interrupted = self.dropped = self.vus_busy = 0
        self.checks = {}
        self.iteration_duration = {}
        for data in exports:
            self.iterations.update(data["iterations"])
            self.interrupted += data["interrupted"]
            self.dropped += data["dropped"]
            self.vus_busy += data["busy"]
            for name, (passes, fails) in data["checks"].items():
                counts = self.checks.setdefault(name, [0, 0])
                counts[0] += passes
                counts[1] += fails
            for journey, h in data["durations"].items():
                hist = self.iteration_duration.setdefault(journey, Histogram())
                hist.values.update({int(k): n for k, n in h["values"].items()})
                hist.count += h["count"]
                hist.total += h["total"]
                if h["count"]:
                    hist._min = min(hist._min, h["min"])
                    hist._max = max(hist._max, h["max"])
        now = time.monotonic() if now is None else now
        self._recent_starts.extend([now] * max(sum(self.iterations.values()) - before, 0))

    def merged_iteration_duration(self, journey: str | None = None) -> Histogram:
        merged = Histogram()
        for name, hist in self.iteration_duration.items():
            if journey is None or name == journey:
                merged.values.update(hist.values)
                merged.count += hist.count
                merged.total += hist.total
                if hist.count:
                    merged._min = min(merged._min, hist._min)
                    merged._max = max(merged._max, hist._max)
        return merged


def bucket_counts(values: dict[int, int], bounds: list[float]) -> tuple[list[int], int, float]:
    """Cumulative counts of ``values`` (ms -> count) for Prometheus buckets given in seconds.

    Returns (cumulative count per bound, total count, sum in seconds)."""
    per_bucket = [0] * len(bounds)
    total, total_sum = 0, 0.0
    for ms, n in values.items():
        seconds = ms / 1000
        index = bisect.bisect_left(bounds, seconds)
        if index < len(bounds):
            per_bucket[index] += n
        total += n
        total_sum += seconds * n
    cumulative, running = [], 0
    for n in per_bucket:
        running += n
        cumulative.append(running)
    return cumulative, total, total_sum
