import random
import statistics

import pytest

from perflab.payments.processor import SimulatedProcessor


def test_latency_follows_the_configured_median_and_p99() -> None:
    processor = SimulatedProcessor(40, 200, 0, rng=random.Random(1))
    samples = sorted(processor.latency_seconds() * 1000 for _ in range(20_000))
    assert statistics.median(samples) == pytest.approx(40, rel=0.05)
    assert samples[int(0.99 * len(samples))] == pytest.approx(200, rel=0.15)


def test_zero_median_means_no_latency() -> None:
    assert SimulatedProcessor(0, 0, 0).latency_seconds() == 0


async def test_decline_rate_is_respected() -> None:
    processor = SimulatedProcessor(0, 0, 0.3, rng=random.Random(2))
    decisions = [await processor.charge(100) for _ in range(5000)]
    declined = sum(not d.approved for d in decisions) / len(decisions)
    assert declined == pytest.approx(0.3, abs=0.03)
    assert all(d.reason for d in decisions if not d.approved)


def test_p99_below_median_is_refused() -> None:
    with pytest.raises(ValueError, match="p99"):
        SimulatedProcessor(100, 50, 0)
