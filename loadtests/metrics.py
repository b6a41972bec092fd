"""Figures the runner keeps: request and iteration latencies in HDR histograms, iterations,
dropped iterations, schedule lag, bytes and checks. Pure Python (no Locust), shared by the
runner, the Prometheus exporter and the summary.

One percentile definition everywhere (summary, thresholds, summary.json, per-second history,
progress lines, Prometheus export): **pN is the sample of rank round(N/100 x count), at least 1,
in ascending order** (HdrHistogram's rule: p95 of 20 samples is the 19th, p50 of 4 the 2nd),
reported as the middle of its HDR bucket, so within 0.05 % of the sample itself (3 significant
digits). Durations from 1 microsecond to 60 s are resolved; a longer one is counted as 60 s
(min, max and avg stay exact: they are kept beside the histogram).
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

PERCENTILE_DEFINITION = (
    "pN = the sample of rank round(N/100 x count) (at least 1) in ascending order, reported as"
    " the middle of its HDR histogram bucket (3 significant digits, 1 us to 60 s)"
)
HIGHEST_US = 60_000_000  # 60 s in microseconds
DIGITS = 3  # significant digits of the histogram


def _new_hdr() -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_US, DIGITS)


class Trend:
    """Durations in milliseconds (a ``thresholds.Trend``): an HDR histogram of microseconds plus
    the exact count, sum, min and max."""

    def __init__(self) -> None:
        self.hdr = _new_hdr()
        self.count = 0
        self.total = 0.0
        self._min = math.inf
        self._max = 0.0

    def add(self, ms: float) -> None:
        ms = max(ms, 0.0)
        self.hdr.record_value(min(max(round(ms * 1000), 1), HIGHEST_US))
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

    def _clamp(self, us: int) -> float:
        """The middle of the HDR bucket holding ``us``, in ms, kept within the exact min..max."""
        mid = self.hdr._hdr_median_equiv_value(us) / 1000
        return min(max(mid, self.min), self.max)

    def percentile(self, p: float) -> float:
        """pN as defined in the module docstring; 0 without samples."""
        if not self.count:
            return 0.0
        if p >= 100:
            return self.max  # p100 is the exact maximum
        return self._clamp(self.hdr.get_value_at_percentile(p))

    def percentiles(self, ps: Iterable[float]) -> dict[float, float | None]:
        """Several percentiles in one pass over the histogram; None without samples."""
        ps = list(ps)
        if not self.count:
            return dict.fromkeys(ps)
        values = self.hdr.get_percentile_to_value_dict(ps)
        return {p: self.max if p >= 100 else self._clamp(values[p]) for p in ps}

    def merge(self, other: Trend) -> None:
        if not other.count:
            return
        self.hdr.add(other.hdr)
        self.count += other.count
        self.total += other.total
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def export(self) -> dict[str, Any]:
        """Plain data (a worker sends it to the master)."""
        return {
            "hdr": self.hdr.encode().decode() if self.count else "",
            "count": self.count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_export(cls, data: dict[str, Any]) -> Trend:
        trend = cls()
        if data["count"]:
            trend.hdr.decode_and_add(data["hdr"])
            trend.count, trend.total = data["count"], data["total"]
            trend._min, trend._max = data["min"], data["max"]
        return trend

    def buckets(self, bounds: list[float]) -> tuple[list[int], int, float]:
        """Cumulative counts for Prometheus buckets given in seconds (a sample counts at the
        middle of its HDR bucket); returns (cumulative count per bound, count, sum in seconds)."""
        per_bucket = [0] * len(bounds)
        for item in self.hdr.get_recorded_iterator():
            seconds = self.hdr._hdr_median_equiv_value(item.value_iterated_to) / 1e6
            index = bisect.bisect_left(bounds, seconds)
            if index < len(bounds):
                per_bucket[index] += item.count_added_in_this_iter_step
        cumulative, running = [], 0
        for n in per_bucket:
            running += n
            cumulative.append(running)
        return cumulative, self.count, self.total / 1000


def merged(trends: Iterable[Trend]) -> Trend:
    out = Trend()
    for trend in trends:
        out.merge(trend)
    return out


@dataclass
class Endpoint:
    """Requests of one (method, name): counts and their latency."""

    requests: int = 0
    failures: int = 0
    duration: Trend = field(default_factory=Trend)


@dataclass
class Window:
    """Requests and iteration starts since the window began (one second of history, or the
    interval between two progress lines)."""

    began: float
    requests: int = 0
    failures: int = 0
    duration: Trend = field(default_factory=Trend)
    start_delay: Trend = field(default_factory=Trend)


@dataclass
class RunState:
    """Everything the runner measures (Locust's own statistics only feed its HTML report and
    CSV files)."""

    started: float = field(default_factory=time.monotonic)
    iterations: Counter[str] = field(default_factory=Counter)  # journey -> started iterations
    interrupted: int = 0
    dropped: int = 0
    iteration_duration: dict[str, Trend] = field(default_factory=dict)
    start_delay: Trend = field(default_factory=Trend)  # iteration_start_delay (open loop)
    endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)  # (method, name)
    data_sent: int = 0
    data_received: int = 0
    checks: dict[str, list[int]] = field(default_factory=dict)  # name -> [passes, fails]
    vus_busy: int = 0
    vus_max_used: int = 0
    second: Window = field(default_factory=lambda: Window(time.monotonic()))
    progress: Window = field(default_factory=lambda: Window(time.monotonic()))
    report: Window = field(default_factory=lambda: Window(time.monotonic()))  # since export()
    _recent_starts: deque[float] = field(default_factory=deque)

    # -- recording (the hot path)

    def request(
        self, method: str, name: str, ms: float, failed: bool, sent: int = 0, received: int = 0
    ) -> None:
        endpoint = self.endpoints.get((method, name))
        if endpoint is None:
            endpoint = self.endpoints[(method, name)] = Endpoint()
        endpoint.requests += 1
        endpoint.failures += failed
        endpoint.duration.add(ms)
        self.data_sent += sent
        self.data_received += received
        for window in (self.second, self.progress, self.report):
            window.requests += 1
            window.failures += failed
            window.duration.add(ms)

    def iteration_started(
        self, journey: str, now: float | None = None, delay_ms: float | None = None
    ) -> None:
        """``delay_ms``: how late the iteration started against its schedule (open loop)."""
        self.iterations[journey] += 1
        self._recent_starts.append(time.monotonic() if now is None else now)
        if delay_ms is not None:
            self.start_delay.add(delay_ms)
            for window in (self.second, self.progress, self.report):
                window.start_delay.add(delay_ms)

    def iteration_finished(self, journey: str, duration_ms: float) -> None:
        self.iteration_duration.setdefault(journey, Trend()).add(duration_ms)

    def check(self, name: str, ok: bool) -> None:
        self.checks.setdefault(name, [0, 0])[0 if ok else 1] += 1

    # -- reading

    def next_second(self, now: float | None = None) -> Window:
        """The window that just ended; a new one begins."""
        done, self.second = self.second, Window(time.monotonic() if now is None else now)
        return done

    def next_progress(self, now: float | None = None) -> Window:
        done, self.progress = self.progress, Window(time.monotonic() if now is None else now)
        return done

    @property
    def requests(self) -> int:
        return sum(e.requests for e in self.endpoints.values())

    @property
    def failures(self) -> int:
        return sum(e.failures for e in self.endpoints.values())

    def select(self, name: str | None = None, method: str | None = None) -> list[Endpoint]:
        """Endpoints whose name (``/path`` or ``GET /path``) and method match; all when None."""
        return [
            e
            for (m, n), e in self.endpoints.items()
            if (name is None or name in (n, f"{m} {n}")) and (method is None or m == method)
        ]

    def http_duration(self, name: str | None = None, method: str | None = None) -> Trend | None:
        chosen = self.select(name, method)
        if not chosen:
            return None
        return chosen[0].duration if len(chosen) == 1 else merged(e.duration for e in chosen)

    def recent_start_rate(self, window: float = 5.0, now: float | None = None) -> float:
        """Iterations started per second over the last ``window`` seconds (the achieved rate)."""
        now = time.monotonic() if now is None else now
        while self._recent_starts and self._recent_starts[0] < now - window:
            self._recent_starts.popleft()
        span = min(window, max(now - self.started, 1.0))  # less than a second is noise
        return len(self._recent_starts) / span

    def merged_iteration_duration(self, journey: str | None = None) -> Trend:
        return merged(h for name, h in self.iteration_duration.items() if journey in (None, name))

    # -- distributed runs: a worker exports, the master absorbs

    def export(self) -> dict[str, Any]:
        """Cumulative figures as plain data (a worker sends them to the master with its stats),
        and the latencies since the previous export (for the master's per-second windows)."""
        window, self.report = self.report, Window(time.monotonic())
        return {
            "window": [window.duration.export(), window.start_delay.export()],
            "iterations": dict(self.iterations),
            "interrupted": self.interrupted,
            "dropped": self.dropped,
            "busy": self.vus_busy,
            "checks": {name: list(counts) for name, counts in self.checks.items()},
            "durations": {j: h.export() for j, h in self.iteration_duration.items()},
            "start_delay": self.start_delay.export(),
            "endpoints": [
                [m, n, e.requests, e.failures, e.duration.export()]
                for (m, n), e in self.endpoints.items()
            ],
            "data": [self.data_sent, self.data_received],
        }

    def absorb(self, exports: list[dict[str, Any]], now: float | None = None) -> None:
        """Become the sum of the workers' latest exports (the master's view). The master's
        windows get what arrived since the previous absorb."""
        before_iterations, before_requests = sum(self.iterations.values()), self.requests
        before_failures = self.failures
        self.iterations = Counter()
        self.interrupted = self.dropped = self.vus_busy = 0
        self.checks = {}
        self.iteration_duration = {}
        self.start_delay = Trend()
        self.endpoints = {}
        self.data_sent = self.data_received = 0
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
                self.iteration_duration.setdefault(journey, Trend()).merge(Trend.from_export(h))
            self.start_delay.merge(Trend.from_export(data["start_delay"]))
            for method, name, requests, failures, duration in data["endpoints"]:
                endpoint = self.endpoints.setdefault((method, name), Endpoint())
                endpoint.requests += requests
                endpoint.failures += failures
                endpoint.duration.merge(Trend.from_export(duration))
            self.data_sent += data["data"][0]
            self.data_received += data["data"][1]
        now = time.monotonic() if now is None else now
        self._recent_starts.extend(
            [now] * max(sum(self.iterations.values()) - before_iterations, 0)
        )
        for window in (self.second, self.progress):
            window.requests += max(self.requests - before_requests, 0)
            window.failures += max(self.failures - before_failures, 0)

    def absorb_window(self, export: dict[str, Any]) -> None:
        """A worker's latencies since its previous report, into the master's windows."""
        duration, delay = (Trend.from_export(t) for t in export.get("window") or ())
        for window in (self.second, self.progress):
            window.duration.merge(duration)
            window.start_delay.merge(delay)
