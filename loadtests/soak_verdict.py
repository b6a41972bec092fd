"""`python -m loadtests.soak_verdict`: what a soak test is for, decided from Prometheus.

Per service, over the soak window: resident memory growth after warm-up (a leak grows without
bound; a healthy process levels off) and latency drift (the gateway's p95 at the end against
the start). Prints a table and exits non-zero when any service fails.
"""

import argparse
import json
import statistics
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

Series = list[tuple[float, float]]

WARMUP_SHARE = 0.25  # caches fill, pools open, the allocator settles
MEMORY_GROWTH_MIB = 20.0  # growth after warm-up that counts as a leak, at least...
MEMORY_GROWTH_SHARE = 0.10  # ...and at least this share of the post-warm-up level
LATENCY_DRIFT_RATIO = 1.5  # p95 at the end vs the start, at least...
LATENCY_DRIFT_MS = 20.0  # ...and at least this many ms worse


@dataclass
class MemoryVerdict:
    service: str
    start_mib: float
    end_mib: float
    slope_mib_per_hour: float

    @property
    def growth_mib(self) -> float:
        return self.end_mib - self.start_mib

    @property
    def leaking(self) -> bool:
        return self.growth_mib > max(MEMORY_GROWTH_MIB, MEMORY_GROWTH_SHARE * self.start_mib)


@dataclass
class LatencyVerdict:
    start_ms: float
    end_ms: float

    @property
    def drifting(self) -> bool:
        return (
            self.end_ms > LATENCY_DRIFT_RATIO * self.start_ms
            and self.end_ms - self.start_ms > LATENCY_DRIFT_MS
        )


def _after_warmup(series: Series) -> Series:
    if len(series) < 8:
        raise ValueError("too few samples for a verdict: soak longer or scrape more often")
    t0, t1 = series[0][0], series[-1][0]
    return [(t, v) for t, v in series if t >= t0 + WARMUP_SHARE * (t1 - t0)]


def _quarter_medians(series: Series) -> tuple[float, float]:
    n = max(1, len(series) // 4)
    return statistics.median(v for _, v in series[:n]), statistics.median(v for _, v in series[-n:])


def memory_verdict(service: str, rss_bytes: Series) -> MemoryVerdict:
    steady = [(t, v / 2**20) for t, v in _after_warmup(rss_bytes)]
    start, end = _quarter_medians(steady)
    slope = statistics.linear_regression([t for t, _ in steady], [v for _, v in steady]).slope
    return MemoryVerdict(service, start, end, slope * 3600)


def latency_verdict(p95_seconds: Series) -> LatencyVerdict:
    start, end = _quarter_medians(_after_warmup(p95_seconds))
    return LatencyVerdict(start * 1000, end * 1000)


def query_range(
    prometheus: str, query: str, start: float, end: float, step: float
) -> dict[str, Series]:
    params = urllib.parse.urlencode({"query": query, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as r:
        result = json.load(r)["data"]["result"]
    return {
        m["metric"].get("job", ""): [(float(t), float(v)) for t, v in m["values"] if v != "NaN"]
        for m in result
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:19090")
    parser.add_argument("--start", type=float, required=True, help="unix time the soak began")
    parser.add_argument("--end", type=float, default=None, help="unix time it ended (now)")
    parser.add_argument("--step", type=float, default=None, help="resolution (duration/120)")
    args = parser.parse_args()
    end = args.end or time.time()
    step = args.step or max(1.0, (end - args.start) / 120)
    services = 'job=~"gateway|orders|payments|worker"'
    rss = query_range(
        args.prometheus, f"process_resident_memory_bytes{{{services}}}", args.start, end, step
    )
    p95 = query_range(
        args.prometheus,
        "histogram_quantile(0.95, sum by (job, le) (rate(http_request_duration_seconds_bucket"
        '{job="gateway"}[1m])))',
        args.start,
        end,
        step,
    )
    failed = False
    print(f"{'service':9} {'memory start':>13} {'end':>9} {'growth':>9} {'slope':>12}  verdict")
    for service in sorted(rss):
        v = memory_verdict(service, rss[service])
        failed |= v.leaking
        print(
            f"{service:9} {v.start_mib:10.1f}MiB {v.end_mib:6.1f}MiB {v.growth_mib:+6.1f}MiB "
            f"{v.slope_mib_per_hour:+8.1f}MiB/h  {'LEAK' if v.leaking else 'ok'}"
        )
    if "gateway" in p95:
        lat = latency_verdict(p95["gateway"])
        failed |= lat.drifting
        print(
            f"gateway p95 latency: {lat.start_ms:.0f} ms at the start, {lat.end_ms:.0f} ms at the "
            f"end: {'DRIFT' if lat.drifting else 'ok'}"
        )
    if not rss:
        sys.exit("Prometheus has no process_resident_memory_bytes for the services in that window")
    print("soak verdict:", "FAIL" if failed else "PASS")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
