"""Statistics of the experiments: percentiles, paired ratios with t-intervals, a rank test,
noise bands from A/A runs, and the Universal Scalability Law. numpy and scipy.stats, so the
tests run without any infrastructure."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

Values = Sequence[float] | np.ndarray
CONFIDENCE = 0.95


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


def _clean(values: Values) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    return data[~np.isnan(data)]


def spread(values: Values) -> Interval:
    """The median of one arm's phases with their range [min, max] (a description of the
    values, not a confidence interval: inference is on the paired ratios)."""
    data = _clean(values)
    if data.size == 0:
        return NAN
    return Interval(float(np.median(data)), float(data.min()), float(data.max()), int(data.size))


def paired_ratio_ci(baseline: Values, change: Values, confidence: float = CONFIDENCE) -> Interval:
    """The ratio change / baseline from paired rounds (one phase of each arm per round):
    the geometric mean of the per-round ratios, with a t-interval on their logarithms
    (scipy.stats.t). Rounds where either value is missing or not positive are left out; with
    fewer than 2 usable rounds there is no interval (nan bounds).

    Why this method: at the 5 rounds an experiment affords, a bootstrap (percentile or BCa)
    covers the truth far less often than it claims (about 80 % for a 95 % interval), while
    the t-interval on log ratios keeps its coverage when the log ratios are roughly normal
    (tests/experiments/test_stats.py simulates it, drift between phases included)."""
    a, b = np.asarray(baseline, dtype=float), np.asarray(change, dtype=float)
    if a.size != b.size:
        raise ValueError("paired rounds: both arms need one value per round")
    usable = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    logs = np.log(b[usable] / a[usable])
    n = int(logs.size)
    if n == 0:
        return NAN
    mean = float(logs.mean())
    if n == 1:
        return Interval(math.exp(mean), math.nan, math.nan, 1)
    sem = float(logs.std(ddof=1)) / math.sqrt(n)
    if sem == 0:
        return Interval(math.exp(mean), math.exp(mean), math.exp(mean), n)
    half = _t_quantile(confidence, n - 1) * sem
    return Interval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n)


@functools.lru_cache
def _t_quantile(confidence: float, df: int) -> float:
    """The two-sided t quantile (scipy.stats.t), cached: simulations call it thousands of
    times with the same arguments."""
    return float(scipy_stats.t.ppf((1 + confidence) / 2, df))


def rank_test(baseline: Values, change: Values) -> float:
    """Two-sided p-value of the exact Mann-Whitney U test (scipy.stats.mannwhitneyu): for
    metrics with no ratio (a baseline of 0, e.g. an error rate without a fault). With 5
    phases per arm it reaches p < 0.05 only when the arms barely overlap; nan when it cannot
    be computed."""
    a, b = _clean(baseline), _clean(change)
    if a.size < 2 or b.size < 2 or np.ptp(np.concatenate([a, b])) == 0:
        return math.nan
    return float(scipy_stats.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue)


def noise_band(aa: Interval) -> float:
    """The noise band of a metric from an A/A comparison: how far from 1 the A/A ratio's
    interval reaches (as a fraction, 0.07 = 7 %), on the log scale. An effect smaller than
    this is within what two identical configurations produce on this machine."""
    if aa.n < 2 or math.isnan(aa.low) or math.isnan(aa.high):
        return math.nan
    return math.exp(max(abs(math.log(aa.low)), abs(math.log(aa.high)))) - 1


def exceeds(ratio: Interval, band: float) -> bool:
    """A "differs" verdict: the interval excludes 1 AND the effect is larger than the noise
    band (|log ratio| > log(1 + band))."""
    if ratio.n < 2 or math.isnan(ratio.low) or math.isnan(ratio.value):
        return False
    return ratio.excludes(1.0) and abs(math.log(ratio.value)) > math.log1p(band)


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
