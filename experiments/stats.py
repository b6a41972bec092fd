"""Statistics of the experiments: percentiles, bootstrap confidence intervals, ratios, and the
Universal Scalability Law. Pure numpy, so the tests run without any infrastructure."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Estimator = Callable[..., Any]
Values = Sequence[float] | np.ndarray


def percentile(values: Values, q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; nan for no values."""
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return math.nan
    return float(np.percentile(data, q))


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval."""

    value: float
    low: float
    high: float
    n: int

    def excludes(self, x: float) -> bool:
        return not (self.low <= x <= self.high)

    def as_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


NAN = Interval(math.nan, math.nan, math.nan, 0)


def _apply(estimator: Estimator, samples: np.ndarray) -> np.ndarray:
    """estimator over each row; vectorised when it takes `axis` (np.median, np.mean)."""
    try:
        return np.asarray(estimator(samples, axis=1))  # type: ignore[call-arg]
    except TypeError:
        return np.apply_along_axis(estimator, 1, samples)


def _clean(values: Values) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    return data[~np.isnan(data)]


def bootstrap_ci(
    values: Values,
    estimator: Estimator = np.median,
    confidence: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of `estimator` (the median by default).

    With the handful of repetitions an experiment affords (3 to 5 per arm) the interval is
    necessarily wide and close to [min, max]; that is honest, not a defect."""
    data = _clean(values)
    if data.size == 0:
        return NAN
    point = float(estimator(data))
    if data.size == 1:
        return Interval(point, point, point, 1)
    rng = np.random.default_rng(seed)
    samples = data[rng.integers(0, data.size, size=(resamples, data.size))]
    stats = _apply(estimator, samples)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return Interval(point, float(low), float(high), int(data.size))


def ratio_ci(
    baseline: Values,
    change: Values,
    estimator: Estimator = np.median,
    confidence: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> Interval:
    """estimator(change) / estimator(baseline), with a bootstrap interval resampling both arms
    independently. nan when the baseline estimate is 0."""
    a, b = _clean(baseline), _clean(change)
    if a.size == 0 or b.size == 0:
        return NAN
    denominator = float(estimator(a))
    point = float(estimator(b)) / denominator if denominator else math.nan
    rng = np.random.default_rng(seed)
    sa = _apply(estimator, a[rng.integers(0, a.size, size=(resamples, a.size))])
    sb = _apply(estimator, b[rng.integers(0, b.size, size=(resamples, b.size))])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = sb / sa
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return Interval(point, math.nan, math.nan, int(min(a.size, b.size)))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return Interval(point, float(low), float(high), int(min(a.size, b.size)))


# --- Universal Scalability Law -------------------------------------------------------------


@dataclass(frozen=True)
class USLFit:
    """X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)) (Gunther).

    lambda_: throughput of one client; sigma: contention (serial share); kappa: coherency
    (crosstalk) cost."""

    lambda_: float
    sigma: float
    kappa: float
    r2: float

    def throughput(self, n: float | np.ndarray) -> float | np.ndarray:
        n = np.asarray(n, dtype=float)
        x = self.lambda_ * n / (1 + self.sigma * (n - 1) + self.kappa * n * (n - 1))
        return float(x) if x.ndim == 0 else x

    @property
    def peak_concurrency(self) -> float:
        """N where throughput peaks: sqrt((1 - sigma) / kappa); inf without coherency cost."""
        if self.kappa <= 0:
            return math.inf
        return math.sqrt(max(1 - self.sigma, 0.0) / self.kappa)

    @property
    def peak_throughput(self) -> float:
        n = self.peak_concurrency
        if math.isinf(n):
            return self.lambda_ / self.sigma if self.sigma > 0 else math.inf
        return float(self.throughput(n))

    def as_dict(self) -> dict[str, float]:
        return {
            "lambda": self.lambda_,
            "sigma": self.sigma,
            "kappa": self.kappa,
            "r2": self.r2,
            "peak_concurrency": self.peak_concurrency,
            "peak_throughput": self.peak_throughput,
        }


def fit_usl(concurrency: Values, throughput: Values) -> USLFit:
    """Least-squares fit of the USL.

    N / X(N) = (1 + sigma (N-1) + kappa N (N-1)) / lambda is linear in (1/lambda,
    sigma/lambda, kappa/lambda), so the fit is a linear least-squares problem on N/X, with
    sigma and kappa constrained to be non-negative (the coefficient that comes out negative is
    pinned to 0 and the rest refitted). Residuals are relative, so every concurrency level
    counts alike."""
    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    keep = np.isfinite(n) & np.isfinite(x) & (x > 0) & (n > 0)
    n, x = n[keep], x[keep]
    if n.size < 3 or np.unique(n).size < 3:
        raise ValueError("the USL fit needs throughput at three or more concurrency levels")
    y = n / x
    columns = {"a": np.ones_like(n), "b": n - 1, "c": n * (n - 1)}
    best: tuple[float, dict[str, float]] | None = None
    for free in (("a", "b", "c"), ("a", "b"), ("a", "c"), ("a",)):
        design = np.column_stack([columns[k] for k in free])
        # rows divided by y: relative errors, so the high-N points do not dominate the fit
        coef, *_ = np.linalg.lstsq(design / y[:, None], np.ones_like(y), rcond=None)
        params = dict(zip(free, (float(c) for c in coef), strict=True))
        if any(v < 0 for v in params.values()):
            continue
        residual = float(np.sum(((design @ coef - y) / y) ** 2))
        if len(free) == 3:
            best = (residual, params)
            break  # the unconstrained optimum is feasible
        if best is None or residual < best[0]:
            best = (residual, params)
    if best is None:
        raise ValueError("no non-negative USL fit")
    params = best[1]
    a = params["a"]
    fit = USLFit(1 / a, params.get("b", 0.0) / a, params.get("c", 0.0) / a, 0.0)
    predicted = np.asarray(fit.throughput(n))
    total = float(np.sum((x - x.mean()) ** 2))
    r2 = 1 - float(np.sum((x - predicted) ** 2)) / total if total else 1.0
    return USLFit(fit.lambda_, fit.sigma, fit.kappa, r2)


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The q-quantile (0..1) of a Prometheus histogram given as cumulative (le, count) pairs,
    interpolated linearly inside the bucket, as PromQL's histogram_quantile does; nan when the
    histogram is empty. A quantile in the +Inf bucket is the highest finite bound."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return math.nan
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            share = (rank - lower_count) / (count - lower_count)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound
