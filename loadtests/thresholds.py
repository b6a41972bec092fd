"""k6-style thresholds: parsing and evaluation.

A threshold is written as a key naming a metric (optionally filtered by tags) and a list of
conditions, exactly as in k6::

    http_req_duration: ["p(95)<300", "p(99)<800"]
    http_req_failed: ["rate<0.01"]
    "http_req_duration{name:GET /api/products/{id}}": ["p(95)<150"]
    checks: [{threshold: "rate>0.99", abortOnFail: true, delayAbortEval: 10s}]

Durations are in milliseconds, rates are fractions (0.01 = 1 %), counter rates are per second.
A condition on a metric that has no samples fails (a typo in a tag would otherwise pass
silently); counters are the exception: a count of 0 is a real value.

Pure Python: evaluation reads figures through the small ``MetricSource`` protocol, which the
runner implements over Locust's statistics and the tests implement with plain numbers.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol


class ThresholdError(ValueError):
    """A threshold that cannot be parsed or does not fit its metric."""


TREND, RATE, COUNTER = "trend", "rate", "counter"

# metric -> (type, tags it can be filtered by); every metric can also be filtered by
# ``scenario`` (the name of an entry of ``scenarios:``, or ``default``), as in k6
_METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "http_req_duration": (TREND, frozenset({"name", "method"})),
    "http_req_failed": (RATE, frozenset({"name", "method"})),
    "http_reqs": (COUNTER, frozenset({"name", "method"})),
    "iteration_duration": (TREND, frozenset({"journey"})),
    "iteration_start_delay": (TREND, frozenset()),
    "data_sent": (COUNTER, frozenset()),
    "data_received": (COUNTER, frozenset()),
    "iterations": (COUNTER, frozenset({"journey"})),
    "dropped_iterations": (COUNTER, frozenset()),
    "checks": (RATE, frozenset({"check"})),
}
METRICS = {metric: (kind, tags | {"scenario"}) for metric, (kind, tags) in _METRICS.items()}

AGGREGATIONS = {
    TREND: "avg, min, med, max or p(N)",
    RATE: "rate",
    COUNTER: "count or rate",
}

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}

_CONDITION = re.compile(
    r"^\s*(?P<agg>avg|min|med|max|count|rate|p\(\s*(?P<pct>\d+(?:\.\d+)?)\s*\))"
    r"\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$"
)
_TAG_SPLIT = re.compile(r",\s*(?=[A-Za-z_]\w*\s*:)")


@dataclass(frozen=True)
class Threshold:
    metric: str
    tags: tuple[tuple[str, str], ...]
    aggregation: str  # avg | min | med | max | count | rate | p(95) ...
    percentile: float | None
    op: str
    value: float
    abort_on_fail: bool = False
    delay_abort_eval: float = 0.0

    @property
    def key(self) -> str:
        if not self.tags:
            return self.metric
        return self.metric + "{" + ",".join(f"{k}:{v}" for k, v in self.tags) + "}"

    @property
    def condition(self) -> str:
        return f"{self.aggregation}{self.op}{self.value:g}"

    @property
    def kind(self) -> str:
        return METRICS[self.metric][0]

    def __str__(self) -> str:
        return f"{self.key}: {self.condition}"


def parse_key(key: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``metric{tag:value,...}`` -> (metric, tags). Tag values may contain braces: ``{id}``."""
    key = key.strip()
    tags: tuple[tuple[str, str], ...] = ()
    if "{" not in key:
        metric = key
    else:
        brace = key.index("{")
        if not key.endswith("}"):
            raise ThresholdError(
                f"{key!r}: tag filter must end with '}}', as in metric{{name:value}}"
            )
        metric = key[:brace].strip()
        pairs = []
        for part in _TAG_SPLIT.split(key[brace + 1 : -1]):
            name, sep, value = part.partition(":")
            if not sep or not name.strip() or not value.strip():
                raise ThresholdError(f"{key!r}: tag {part!r} is not of the form name:value")
            pairs.append((name.strip(), value.strip()))
        tags = tuple(pairs)
    if metric not in METRICS:
        raise ThresholdError(
            f"{key!r}: unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}"
        )
    allowed = METRICS[metric][1]
    for name, _ in tags:
        if name not in allowed:
            hint = f"one of {', '.join(sorted(allowed))}" if allowed else "none"
            raise ThresholdError(
                f"{key!r}: {metric} cannot be filtered by tag {name!r} (tags: {hint})"
            )
    return metric, tags


def parse_condition(metric: str, text: str) -> tuple[str, float | None, str, float]:
    """``p(95)<300`` -> (aggregation, percentile, operator, value), checked against the metric."""
    match = _CONDITION.match(text) if isinstance(text, str) else None
    if not match:
        raise ThresholdError(
            f"{metric}: cannot parse {text!r};"
            " expected <aggregation><operator><number>, e.g. p(95)<300 or rate<0.01"
        )
    kind = METRICS[metric][0]
    agg = match["agg"].replace(" ", "")
    base = "p" if match["pct"] is not None else agg
    allowed = {
        TREND: {"avg", "min", "med", "max", "p"},
        RATE: {"rate"},
        COUNTER: {"count", "rate"},
    }[kind]
    if base not in allowed:
        raise ThresholdError(
            f"{metric}: {agg!r} does not apply to a {kind} metric; use {AGGREGATIONS[kind]}"
        )
    percentile = None
    if match["pct"] is not None:
        percentile = float(match["pct"])
        if not 0 < percentile <= 100:
            raise ThresholdError(f"{metric}: percentile in {text!r} must be in (0, 100]")
        agg = f"p({percentile:g})"
    return agg, percentile, match["op"], float(match["value"])


def parse_thresholds(
    spec: object, parse_duration: Callable[[object], float]
) -> tuple[Threshold, ...]:
    """A scenario's ``thresholds`` mapping -> Threshold objects (ThresholdError if malformed)."""
    if spec is None:
        return ()
    if not isinstance(spec, Mapping):
        raise ThresholdError("thresholds must be a mapping of metric -> list of conditions")
    result: list[Threshold] = []
    for key, conditions in spec.items():
        metric, tags = parse_key(str(key))
        if isinstance(conditions, (str, Mapping)):
            conditions = [conditions]
        if not isinstance(conditions, list) or not conditions:
            raise ThresholdError(f"{key}: expected a list of conditions such as ['p(95)<300']")
        for item in conditions:
            abort, delay = False, 0.0
            if isinstance(item, Mapping):
                unknown = set(item) - {"threshold", "abortOnFail", "delayAbortEval"}
                if unknown or "threshold" not in item:
                    raise ThresholdError(
                        f"{key}: a condition object has keys threshold, abortOnFail, delayAbortEval"
                        + (f" (unknown: {', '.join(sorted(map(str, unknown)))})" if unknown else "")
                    )
                abort = bool(item.get("abortOnFail", False))
                delay = parse_duration(item.get("delayAbortEval", 0))
                item = item["threshold"]
            agg, pct, op, value = parse_condition(metric, item)
            result.append(Threshold(metric, tags, agg, pct, op, value, abort, delay))
    return tuple(result)


# --- evaluation ------------------------------------------------------------------------------


class Trend(Protocol):
    """Latency-like figures in milliseconds."""

    @property
    def count(self) -> int: ...
    @property
    def avg(self) -> float: ...
    @property
    def min(self) -> float: ...
    @property
    def max(self) -> float: ...
    def percentile(self, p: float) -> float: ...


class MetricSource(Protocol):
    def trend(self, metric: str, tags: Mapping[str, str]) -> Trend | None: ...
    def rate(self, metric: str, tags: Mapping[str, str]) -> tuple[int, int]:
        """(non-zero samples, all samples), e.g. (failed requests, requests)."""
        ...

    def counter(self, metric: str, tags: Mapping[str, str]) -> tuple[float, float]:
        """(count, elapsed seconds)."""
        ...


@dataclass(frozen=True)
class Result:
    threshold: Threshold
    ok: bool
    observed: float | None  # None: no samples

    def describe(self) -> str:
        if self.observed is None:
            return "no samples"
        t = self.threshold
        if t.kind == TREND:
            return f"{self.observed:.1f}ms"
        if t.kind == RATE:
            return f"{self.observed * 100:.2f}%"
        if t.aggregation == "rate":
            return f"{self.observed:.2f}/s"
        return f"{self.observed:g}"


def observe(threshold: Threshold, source: MetricSource) -> float | None:
    tags = dict(threshold.tags)
    if threshold.kind == TREND:
        trend = source.trend(threshold.metric, tags)
        if trend is None or trend.count == 0:
            return None
        if threshold.percentile is not None:
            return trend.percentile(threshold.percentile)
        if threshold.aggregation == "med":
            return trend.percentile(50)
        return float(getattr(trend, threshold.aggregation))
    if threshold.kind == RATE:
        hits, total = source.rate(threshold.metric, tags)
        return hits / total if total else None
    count, elapsed = source.counter(threshold.metric, tags)
    if threshold.aggregation == "count":
        return count
    return count / elapsed if elapsed > 0 else None


def evaluate(threshold: Threshold, source: MetricSource) -> Result:
    observed = observe(threshold, source)
    ok = observed is not None and OPERATORS[threshold.op](observed, threshold.value)
    return Result(threshold, ok, observed)


def evaluate_all(thresholds: tuple[Threshold, ...], source: MetricSource) -> list[Result]:
    return [evaluate(t, source) for t in thresholds]
