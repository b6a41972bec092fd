"""What a phase measured: the services' metrics as samples, a snapshot of them at one moment,
and the figures of a phase between two snapshots (counter deltas, gauge series, histogram
quantiles, PostgreSQL counter deltas). The same for both targets: the local scraper and the
cluster's Prometheus both produce Snapshots."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from experiments import stats

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


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
