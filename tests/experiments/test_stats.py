"""The statistics of the experiments on synthetic data with known answers."""

import math

import numpy as np
import pytest

from experiments import stats


def test_percentile_matches_the_definition() -> None:
    values = list(range(1, 101))  # 1..100
    assert stats.percentile(values, 50) == pytest.approx(50.5)
    assert stats.percentile(values, 0) == 1
    assert stats.percentile(values, 100) == 100
    assert stats.percentile(values, 95) == pytest.approx(95.05)


def test_percentile_ignores_nan_and_is_nan_without_values() -> None:
    assert stats.percentile([1.0, math.nan, 3.0], 50) == 2.0
    assert math.isnan(stats.percentile([], 50))


def test_bootstrap_interval_of_the_median_covers_the_truth_about_95_percent() -> None:
    """Coverage on 300 synthetic samples of 40 from a lognormal whose median is known."""
    rng = np.random.default_rng(7)
    true_median = math.exp(3.0)
    trials, covered = 300, 0
    for i in range(trials):
        sample = rng.lognormal(mean=3.0, sigma=0.5, size=40)
        ci = stats.bootstrap_ci(sample, resamples=1000, seed=i)
        assert ci.low <= ci.value <= ci.high
        covered += ci.low <= true_median <= ci.high
    assert 0.88 <= covered / trials <= 0.99


def test_bootstrap_interval_is_degenerate_for_one_value_and_nan_for_none() -> None:
    assert stats.bootstrap_ci([5.0]).as_dict() == {"value": 5.0, "low": 5.0, "high": 5.0, "n": 1}
    assert stats.bootstrap_ci([]).n == 0


def test_ratio_interval_excludes_one_for_a_clear_difference_only() -> None:
    a = [10.0, 11.0, 10.5, 9.8, 10.2]
    clear = stats.ratio_ci(a, [20.0, 21.0, 19.5, 20.4, 20.8])
    assert clear.value == pytest.approx(20.4 / 10.2)
    assert clear.excludes(1.0)
    same = stats.ratio_ci(a, [10.1, 9.9, 10.6, 10.3, 10.0])
    assert not same.excludes(1.0)


@pytest.mark.parametrize(
    ("lam", "sigma", "kappa"), [(100.0, 0.05, 0.002), (250.0, 0.2, 0.0005), (40.0, 0.0, 0.01)]
)
def test_usl_fit_recovers_known_parameters(lam: float, sigma: float, kappa: float) -> None:
    truth = stats.USLFit(lam, sigma, kappa, 1.0)
    n = np.array([1, 2, 4, 8, 16, 32, 64], dtype=float)
    rng = np.random.default_rng(1)
    x = truth.throughput(n) * rng.normal(1.0, 0.01, n.size)  # 1 % noise
    fit = stats.fit_usl(n, x)
    assert fit.lambda_ == pytest.approx(lam, rel=0.05)
    assert fit.sigma == pytest.approx(sigma, abs=0.02)
    assert fit.kappa == pytest.approx(kappa, rel=0.25, abs=1e-4)
    assert fit.peak_concurrency == pytest.approx(truth.peak_concurrency, rel=0.2)
    assert fit.r2 > 0.98


def test_usl_fit_without_retrograde_puts_the_peak_at_lambda_over_sigma() -> None:
    n = np.array([1, 2, 4, 8, 16], dtype=float)
    x = 50 * n / (1 + 0.1 * (n - 1))  # Amdahl: kappa = 0
    fit = stats.fit_usl(n, x)
    assert fit.kappa == pytest.approx(0, abs=1e-6)
    assert fit.peak_concurrency > 1e4  # no retrograde: the peak is far beyond any measurement
    assert fit.peak_throughput == pytest.approx(500, rel=0.01)  # lambda / sigma


def test_usl_fit_needs_three_levels() -> None:
    with pytest.raises(ValueError, match="three"):
        stats.fit_usl([1, 2, 1, 2], [10, 19, 10, 19])


def test_bucket_quantile_interpolates_inside_the_bucket_like_promql() -> None:
    # 100 observations: 50 in (0, 0.1], 40 in (0.1, 0.5], 10 in (0.5, 1]
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    assert stats.bucket_quantile(0.5, buckets) == pytest.approx(0.1)
    assert stats.bucket_quantile(0.7, buckets) == pytest.approx(0.1 + 0.4 * 20 / 40)
    assert stats.bucket_quantile(0.95, buckets) == pytest.approx(0.5 + 0.5 * 5 / 10)
    assert stats.bucket_quantile(0.25, buckets) == pytest.approx(0.05)  # from 0 within le=0.1


def test_bucket_quantile_in_the_inf_bucket_is_the_highest_bound_and_nan_when_empty() -> None:
    assert stats.bucket_quantile(0.99, [(1.0, 10.0), (math.inf, 20.0)]) == 1.0
    assert math.isnan(stats.bucket_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))
    assert math.isnan(stats.bucket_quantile(0.5, []))
