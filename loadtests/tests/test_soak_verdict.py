import pytest

from loadtests.soak_verdict import latency_verdict, memory_verdict

MIB = 2**20


def series(values: list[float], step: float = 5.0) -> list[tuple[float, float]]:
    return [(i * step, v) for i, v in enumerate(values)]


def test_memory_that_levels_off_after_warm_up_is_no_leak() -> None:
    warmup = [50 + 4 * i for i in range(10)]  # 50 -> 86 MiB while caches fill
    steady = [90 + (i % 3) for i in range(30)]  # noise around 90 MiB
    verdict = memory_verdict("gateway", series([v * MIB for v in warmup + steady]))
    assert not verdict.leaking
    assert abs(verdict.growth_mib) < 3


def test_steady_growth_is_a_leak() -> None:
    verdict = memory_verdict("gateway", series([(80 + 2 * i) * MIB for i in range(60)]))
    assert verdict.leaking
    assert verdict.growth_mib > 40
    assert verdict.slope_mib_per_hour == pytest.approx(2 / 5 * 3600, rel=0.01)


def test_latency_drift_needs_both_ratio_and_absolute_increase() -> None:
    flat = series([0.05] * 20 + [0.055] * 20)
    assert not latency_verdict(flat).drifting
    tiny = series([0.002] * 20 + [0.006] * 20)  # 3x, but only 4 ms
    assert not latency_verdict(tiny).drifting
    worse = series([0.05] * 20 + [0.2] * 20)
    assert latency_verdict(worse).drifting


def test_too_short_a_soak_gives_no_verdict() -> None:
    with pytest.raises(ValueError, match="too few samples"):
        memory_verdict("gateway", series([1.0, 2.0, 3.0]))
