from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from loadtests.metrics import Trend
from loadtests.scenario import parse_duration
from loadtests.thresholds import (
    ThresholdError,
    evaluate,
    parse_condition,
    parse_key,
    parse_thresholds,
)


def test_key_with_a_tag_whose_value_contains_braces() -> None:
    assert parse_key("http_req_duration{name:GET /api/products/{id}}") == (
        "http_req_duration",
        (("name", "GET /api/products/{id}"),),
    )
    assert parse_key("http_req_failed{name:/api/orders, method:POST}") == (
        "http_req_failed",
        (("name", "/api/orders"), ("method", "POST")),
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("http_req_latency", "unknown metric 'http_req_latency'"),
        ("http_req_duration{name:x", "must end with '}'"),
        ("http_req_duration{status:500}", "cannot be filtered by tag 'status'"),
        ("http_req_duration{name}", "not of the form name:value"),
        ("dropped_iterations{journey:buy}", "(tags: one of scenario"),
    ],
)
def test_bad_keys_are_rejected_with_the_reason(key: str, message: str) -> None:
    with pytest.raises(ThresholdError, match=message.replace("(", r"\(").replace("{", r"\{")):
        parse_key(key)


@pytest.mark.parametrize(
    ("metric", "text", "expected"),
    [
        ("http_req_duration", "p(95)<300", ("p(95)", 95.0, "<", 300.0)),
        ("http_req_duration", " p( 99.9 ) <= 1000 ", ("p(99.9)", 99.9, "<=", 1000.0)),
        ("http_req_duration", "avg<200", ("avg", None, "<", 200.0)),
        ("http_req_duration", "med<100", ("med", None, "<", 100.0)),
        ("http_req_failed", "rate<0.01", ("rate", None, "<", 0.01)),
        ("http_reqs", "count>=5", ("count", None, ">=", 5.0)),
        ("http_reqs", "rate>100", ("rate", None, ">", 100.0)),
        ("dropped_iterations", "count==0", ("count", None, "==", 0.0)),
    ],
)
def test_conditions_parse(metric: str, text: str, expected: tuple[object, ...]) -> None:
    assert parse_condition(metric, text) == expected


@pytest.mark.parametrize(
    ("metric", "text", "message"),
    [
        ("http_req_duration", "p95<300", "cannot parse"),
        ("http_req_duration", "p(95)<", "cannot parse"),
        ("http_req_duration", "p(95)=300", "cannot parse"),
        ("http_req_duration", "p(0)<300", r"must be in \(0, 100\]"),
        ("http_req_duration", "rate<0.1", "does not apply to a trend metric"),
        ("http_req_failed", "p(95)<1", "use rate"),
        ("checks", "count>1", "does not apply to a rate metric"),
    ],
)
def test_bad_conditions_say_what_is_expected(metric: str, text: str, message: str) -> None:
    with pytest.raises(ThresholdError, match=message):
        parse_condition(metric, text)


def test_threshold_objects_carry_abort_on_fail_and_delay() -> None:
    thresholds = parse_thresholds(
        {
            "http_req_duration": [
                "p(95)<300",
                {"threshold": "p(99)<800", "abortOnFail": True, "delayAbortEval": "10s"},
            ],
            "checks": "rate>0.99",
        },
        parse_duration,
    )
    assert [(str(t), t.abort_on_fail, t.delay_abort_eval) for t in thresholds] == [
        ("http_req_duration: p(95)<300", False, 0.0),
        ("http_req_duration: p(99)<800", True, 10.0),
        ("checks: rate>0.99", False, 0.0),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["p(95)<300"], "must be a mapping"),
        ({"http_req_duration": []}, "expected a list of conditions"),
        (
            {"http_req_duration": [{"threshold": "p(95)<1", "abortOnFial": True}]},
            "unknown: abortOnFial",
        ),
        ({"http_req_duration": [{"abortOnFail": True}]}, "keys threshold, abortOnFail"),
    ],
)
def test_bad_threshold_specs(spec: object, message: str) -> None:
    with pytest.raises(ThresholdError, match=message):
        parse_thresholds(spec, parse_duration)


@dataclass
class FakeFigures:
    """A MetricSource made of plain numbers."""

    durations: dict[str, list[float]]
    requests: dict[str, tuple[int, int]]  # name -> (failures, requests)
    elapsed: float = 10.0
    dropped: int = 0

    def trend(self, metric: str, tags: Mapping[str, str]) -> Trend | None:
        values = self.durations.get(tags.get("name", "*"))
        if values is None:
            return None
        hist = Trend()
        for v in values:
            hist.add(v)
        return hist

    def rate(self, metric: str, tags: Mapping[str, str]) -> tuple[int, int]:
        return self.requests.get(tags.get("name", "*"), (0, 0))

    def counter(self, metric: str, tags: Mapping[str, str]) -> tuple[float, float]:
        if metric == "dropped_iterations":
            return self.dropped, self.elapsed
        return self.requests.get(tags.get("name", "*"), (0, 0))[1], self.elapsed


def one(spec: dict[str, object]):  # type: ignore[no-untyped-def]
    [threshold] = parse_thresholds(spec, parse_duration)
    return threshold


FIGURES = FakeFigures(
    durations={
        "*": [float(ms) for ms in range(1, 101)],
        "GET /api/products/{id}": [10.0] * 99 + [900.0],
    },
    requests={"*": (3, 200), "GET /api/products/{id}": (0, 100)},
)


@pytest.mark.parametrize(
    ("spec", "ok", "observed"),
    [
        ({"http_req_duration": "p(95)<96"}, True, 95.0),
        ({"http_req_duration": "p(95)<95"}, False, 95.0),  # the bound itself fails '<'
        ({"http_req_duration": "p(95)<=95.1"}, True, 95.0),  # 95 to 3 significant digits
        ({"http_req_duration": "max<100"}, False, 100.0),
        ({"http_req_duration": "avg<51"}, True, 50.5),
        ({"http_req_duration{name:GET /api/products/{id}}": "p(99)<100"}, True, 10.0),
        ({"http_req_duration{name:GET /api/products/{id}}": "p(100)<100"}, False, 900.0),
        ({"http_req_failed": "rate<0.01"}, False, 0.015),
        ({"http_req_failed": "rate<0.02"}, True, 0.015),
        ({"http_reqs": "rate>=20"}, True, 20.0),
        ({"dropped_iterations": "count==0"}, True, 0.0),
    ],
)
def test_evaluation(spec: dict[str, object], ok: bool, observed: float) -> None:
    result = evaluate(one(spec), FIGURES)
    assert result.observed == pytest.approx(observed, rel=5e-4)  # 3 significant digits
    assert result.ok is ok


def test_a_condition_without_samples_fails_instead_of_passing_silently() -> None:
    result = evaluate(one({"http_req_duration{name:GET /api/typo}": "p(95)<300"}), FIGURES)
    assert (result.ok, result.observed, result.describe()) == (False, None, "no samples")
    result = evaluate(one({"http_req_failed{name:GET /api/typo}": "rate<0.01"}), FIGURES)
    assert (result.ok, result.observed) == (False, None)


def test_results_are_described_in_the_unit_of_their_metric() -> None:
    assert evaluate(one({"http_req_duration": "p(95)<300"}), FIGURES).describe() == "95.0ms"
    assert evaluate(one({"http_req_failed": "rate<0.01"}), FIGURES).describe() == "1.50%"
    assert evaluate(one({"http_reqs": "rate>1"}), FIGURES).describe() == "20.00/s"
    assert evaluate(one({"http_reqs": "count>1"}), FIGURES).describe() == "200"


@pytest.mark.parametrize(("true_p95", "ok"), [(296.0, True), (299.0, True), (304.0, False)])
def test_a_threshold_at_300ms_judges_the_true_p95(true_p95: float, ok: bool) -> None:
    """Locust's buckets made a true p95 of 296 ms fail p(95)<300 (rounded to 300); the HDR
    histogram keeps 3 significant digits."""
    samples = [100.0] * 94 + [true_p95] + [900.0] * 5  # the 95th of 100 samples is true_p95
    figures = FakeFigures(durations={"*": samples}, requests={"*": (0, 100)})
    result = evaluate(one({"http_req_duration": "p(95)<300"}), figures)
    assert result.observed == pytest.approx(true_p95, rel=5e-4)
    assert result.ok is ok
