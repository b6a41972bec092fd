"""The load generator's own load: its CPU and event-loop lag per second, and whether it was
saturated for long enough to make the run not valid (one process, or the worst of the
distributed workers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import psutil

from loadtests.metrics import Trend


class GeneratorMonitor:
    """The generator's own load, so it knows when it is the bottleneck: the CPU of this process
    (as a share of one core, the most one Python process can use) and the event-loop lag (how
    late a 50 ms sleep of the gevent hub wakes up), per window of about a second.

    A window is saturated when the process used at least ``SATURATED_CPU`` of a core, or when
    the median lag was at least ``SATURATED_LAG_MS`` (the loop is busy, or starved of CPU by
    other work: either way iterations start late and latencies include the generator's own
    waiting). A run is not valid when saturated windows cover at least ``INVALID_SHARE`` of
    the schedule and at least 2 s."""

    INTERVAL = 0.05
    SATURATED_CPU = 0.90
    SATURATED_LAG_MS = 50.0
    INVALID_SHARE = 0.20
    LAG_WARNING_MS = 20.0

    def __init__(self, in_schedule: Callable[[], bool]) -> None:
        self.in_schedule = in_schedule
        self.process = psutil.Process()
        self.lag = Trend()  # every sample of the run
        self.window_lag = Trend()
        # (seconds, CPU share, lag p50 ms, lag p99 ms, in the schedule) per window
        self.windows: list[tuple[float, float, float, float, bool]] = []
        self._began = (time.perf_counter(), self._cpu())

    def _cpu(self) -> float:
        t = self.process.cpu_times()
        return float(t.user + t.system)

    @property
    def last(self) -> tuple[float, float, float] | None:
        """(CPU share, lag p50 ms, lag p99 ms) of the last window."""
        return self.windows[-1][1:4] if self.windows else None

    @classmethod
    def saturated(cls, cpu: float, lag_p50: float) -> bool:
        return cpu >= cls.SATURATED_CPU or lag_p50 >= cls.SATURATED_LAG_MS

    def run(self) -> None:
        while True:
            before = time.perf_counter()
            gevent.sleep(self.INTERVAL)
            now = time.perf_counter()
            lag_ms = max((now - before - self.INTERVAL) * 1000, 0.0)
            self.lag.add(lag_ms)
            self.window_lag.add(lag_ms)
            if now - self._began[0] >= 1.0:
                self.close(now)

    def close(self, now: float) -> None:
        cpu = self._cpu()
        wall = now - self._began[0]
        share = (cpu - self._began[1]) / wall if wall > 0 else 0.0
        p = self.window_lag.percentiles((50.0, 99.0))
        self.windows.append((wall, share, p[50.0] or 0.0, p[99.0] or 0.0, self.in_schedule()))
        self.window_lag = Trend()
        self._began = (now, cpu)

    def verdict(self) -> dict[str, Any]:
        windows = [w for w in self.windows if w[4]] or self.windows
        seconds = sum(w[0] for w in windows)
        saturated = sum(w[0] for w in windows if self.saturated(w[1], w[2]))
        valid = not (saturated >= 2.0 and saturated >= self.INVALID_SHARE * seconds)
        cpu = sum(w[0] * w[1] for w in windows) / seconds if seconds else None
        lag = self.lag.percentiles((50.0, 99.0))
        return {
            "valid": valid,
            "cpu_avg": cpu,
            "cpu_max": max((w[1] for w in windows), default=None),
            "saturated_s": round(saturated, 2),
            "seconds": round(seconds, 2),
            "loop_lag_p50_ms": lag[50.0],
            "loop_lag_p99_ms": lag[99.0],
            "loop_lag_max_ms": self.lag.max if self.lag.count else None,
            "rule": f"a second is saturated when the generator used >= {self.SATURATED_CPU:.0%}"
            f" of a core or its event loop lagged >= {self.SATURATED_LAG_MS:.0f} ms (median);"
            f" invalid when saturated seconds are >= {self.INVALID_SHARE:.0%} of the schedule"
            " and >= 2 s",
        }


def combine(verdicts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The workers' generator verdicts as one: valid only if every worker was, the worst
    figure of each."""
    if not verdicts:
        return None

    def worst(key: str) -> float | None:
        values = [v[key] for v in verdicts if v.get(key) is not None]
        return max(values) if values else None

    return {
        "valid": all(v["valid"] for v in verdicts),
        "cpu_avg": worst("cpu_avg"),
        "cpu_max": worst("cpu_max"),
        "saturated_s": worst("saturated_s") or 0.0,
        "seconds": worst("seconds") or 0.0,
        "loop_lag_p50_ms": worst("loop_lag_p50_ms"),
        "loop_lag_p99_ms": worst("loop_lag_p99_ms"),
        "loop_lag_max_ms": worst("loop_lag_max_ms"),
        "rule": verdicts[0]["rule"] + f" (worst of {len(verdicts)} workers)",
    }
