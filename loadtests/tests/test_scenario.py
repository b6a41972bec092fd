from pathlib import Path

import pytest

from loadtests.scenario import (
    ScenarioError,
    format_duration,
    load,
    loads,
    parse_duration,
    resolve_target,
)

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml"))

ARRIVAL = """
executor: ramping-arrival-rate
preAllocatedVUs: 5
stages: [{duration: 10s, target: 10}]
"""


def test_every_scenario_ships() -> None:
    assert {p.stem for p in SCENARIOS} >= {"smoke", "load", "spike", "stress", "soak", "breakpoint"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("variant", [None, "ci"])
def test_shipped_scenarios_and_their_ci_variants_are_valid(path: Path, variant: str | None) -> None:
    scenario = load(path, variant=variant, env={})
    assert scenario.name == path.stem
    assert scenario.thresholds, "every shipped scenario judges the run"
    if variant == "ci":
        assert scenario.duration <= 30, "CI variants stay short"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("2.5s", 2.5),
        ("1m30s", 90),
        (90, 90),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["3x", "", "5 m", "m5", "1h 30m", "-1s", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("30s", "5m", "1h30m", "500ms", "1h1m30s"):
        assert format_duration(parse_duration(text)) == text


def test_targets() -> None:
    assert resolve_target("local") == "http://127.0.0.1:18080"
    assert resolve_target("kind") == "http://localhost:8080"
    assert resolve_target("http://gw.example:9000/") == "http://gw.example:9000"
    with pytest.raises(ScenarioError, match="use local, kind or a URL"):
        resolve_target("staging")


def test_rates_are_normalised_to_iterations_per_second() -> None:
    s = loads(
        "executor: constant-arrival-rate\nrate: 600\ntimeUnit: 1m\nduration: 1m\n"
        "preAllocatedVUs: 10\n",
        env={},
    )
    [w] = s.workloads
    assert (w.schedule.start, w.schedule.stages[0].target, w.max_vus) == (10, 10, 10)
    assert w.open_loop and w.unit == "iters/s" and w.name == "default"


def test_constant_vus_is_a_flat_schedule() -> None:
    s = loads("executor: constant-vus\nvus: 3\nduration: 20s\n", env={})
    [w] = s.workloads
    assert (w.schedule.target_at(0), w.schedule.target_at(19), s.duration) == (3, 3, 20)
    assert not s.open_loop


def test_environment_variables_with_defaults() -> None:
    text = "executor: constant-vus\nvus: ${VUS:-2}\nduration: ${DURATION}\n"
    assert loads(text, env={"DURATION": "1m"}).workloads[0].schedule.start == 2
    assert loads(text, env={"DURATION": "1m", "VUS": "7"}).workloads[0].schedule.start == 7
    assert (
        loads(text, env={"DURATION": "1m", "VUS": ""}).workloads[0].schedule.start == 2
    )  # empty counts as unset
    with pytest.raises(ScenarioError, match="needs the environment variable DURATION"):
        loads(text, env={})


def test_a_variant_overrides_top_level_keys() -> None:
    text = ARRIVAL + "variants:\n  ci:\n    stages: [{duration: 2s, target: 3}]\n    maxVUs: 9\n"
    assert loads(text, env={}).duration == 10
    ci = loads(text, variant="ci", env={})
    [w] = ci.workloads
    assert (ci.duration, w.max_vus, w.pre_allocated_vus, ci.variant) == (2, 9, 5, "ci")
    with pytest.raises(ScenarioError, match=r"no variant 'nightly' \(variants: ci\)"):
        loads(text, variant="nightly", env={})


def test_journeys_can_be_imported_from_a_module() -> None:
    s = loads(ARRIVAL + "journeys: {browse: 1, 'my.pkg.module:journey': 2}\n", env={})
    assert s.workloads[0].journeys == {"browse": 1, "my.pkg.module:journey": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("executor: ramping-vus\nstage: []\n", "stage: unknown key; did you mean 'stages'?"),
        ("executor: ramping-vu\n", "executor: must be one of ramping-vus, constant-vus"),
        ("executor: ramping-vus\nstages: {duration: 1s}\n", "stages: must be a non-empty list"),
        ("executor: ramping-vus\nstages: [{duration: 1s}]\n", r"stages\[0\]: must be \{duration"),
        (
            "executor: ramping-vus\nstages: [{duration: 3x, target: 1}]\n",
            r"stages\[0\].duration: '3x' is not a duration",
        ),
        (
            "executor: ramping-vus\nstages: [{duration: 1s, target: -1}]\n",
            r"stages\[0\].target: must be a number >= 0",
        ),
        (
            "executor: ramping-vus\nstages: [{duration: 0s, target: 1}]\n",
            r"stages\[0\].duration: must be longer",
        ),
        ("executor: constant-vus\nvus: 2\n", "duration: is required"),
        ("executor: constant-vus\nvus: 2.5\nduration: 1s\n", "vus: must be a whole number"),
        (
            "executor: constant-arrival-rate\nrate: 5\nduration: 1s\n",
            "preAllocatedVUs: is required",
        ),
        (ARRIVAL + "maxVUs: 2\n", r"maxVUs: must be at least preAllocatedVUs \(5\)"),
        (ARRIVAL + "vus: 3\n", "vus: does not apply to executor ramping-arrival-rate"),
        (
            ARRIVAL + "thresholds: {http_req_duration: ['p95<300']}\n",
            "thresholds: http_req_duration: cannot parse",
        ),
        (ARRIVAL + "thresholds: {http_req_failed: ['p(95)<1']}\n", "thresholds: .*use rate"),
        (
            ARRIVAL + "journeys: {brwose: 1}\n",
            "journeys.brwose: unknown journey .* did you mean 'browse'",
        ),
        (ARRIVAL + "journeys: {browse: 0}\n", "at least one journey needs a weight"),
        (ARRIVAL + "thinkTime: {min: 2s, max: 1s}\n", "thinkTime: max must not be below min"),
        (ARRIVAL + "name: has spaces\n", "name: must be a short identifier"),
        ("executor: [unclosed\n", "not valid YAML"),
        ("- executor: ramping-vus\n", "a scenario is a YAML mapping"),
    ],
)
def test_bad_scenarios_name_the_key_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as err:
        loads(text, source="my.yaml", env={})
    assert str(err.value).startswith("my.yaml")


def test_a_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load(tmp_path / "nope.yaml", env={})


# --- several scenarios in one file (k6's `scenarios:`) ----------------------------------------

MIXED = """
name: mixed
thinkTime: 0s
scenarios:
  browse:
    executor: constant-arrival-rate
    rate: 10
    duration: 1m
    preAllocatedVUs: 5
    journeys: {browse: 3, product: 1}
  checkout:
    executor: ramping-vus
    startTime: 30s
    stages: [{duration: 10s, target: 5}, {duration: 20s, target: 5}]
    journeys: {buy: 1}
    thinkTime: {min: 1s, max: 2s}
    gracefulStop: 5s
thresholds:
  "http_req_duration{scenario:browse}": ["p(95)<300"]
  "http_req_failed{scenario:checkout}": ["rate<0.01"]
variants:
  ci:
    scenarios:
      browse: {duration: 10s}
      checkout: {startTime: 3s, stages: [{duration: 5s, target: 2}]}
"""


SCENARIO_ENTRY = "    executor: constant-vus\n    vus: 1\n    duration: 5s\n"


def test_several_scenarios_each_with_its_executor_start_time_and_journeys() -> None:
    s = loads(MIXED, env={})
    browse, checkout = s.workloads
    assert (browse.name, browse.executor, browse.start_time) == (
        "browse",
        "constant-arrival-rate",
        0,
    )
    assert browse.journeys == {"browse": 3, "product": 1}
    assert browse.think_time == (0, 0)  # the top-level default
    assert (checkout.name, checkout.executor, checkout.start_time) == (
        "checkout",
        "ramping-vus",
        30,
    )
    assert (checkout.end, checkout.think_time, checkout.graceful_stop) == (60, (1, 2), 5)
    assert s.duration == 60 and not s.open_loop
    assert [dict(t.tags)["scenario"] for t in s.thresholds] == ["browse", "checkout"]


def test_a_variant_merges_into_each_scenario() -> None:
    s = loads(MIXED, variant="ci", env={})
    browse, checkout = s.workloads
    assert (browse.duration, browse.max_vus, browse.journeys["browse"]) == (10, 5, 3)
    assert (checkout.start_time, checkout.end, checkout.journeys) == (3, 8, {"buy": 1})
    with pytest.raises(ScenarioError, match=r"variants.bad.scenarios.nope: no such scenario"):
        loads(MIXED + "  bad:\n    scenarios: {nope: {startTime: 1s}}\n", variant="bad", env={})


def test_one_scenario_that_starts_later_is_not_run_as_a_plain_single_executor() -> None:
    s = loads("scenarios:\n  late:\n" + SCENARIO_ENTRY + "    startTime: 2s\n", env={})
    assert s.only is None and s.duration == 7  # runs through the per-scenario drivers
    assert loads("scenarios:\n  now:\n" + SCENARIO_ENTRY, env={}).only is not None


def test_a_file_without_scenarios_is_one_scenario_named_default() -> None:
    s = loads(ARRIVAL + "thresholds: {'http_req_duration{scenario:default}': ['p(95)<1']}\n")
    assert [w.name for w in s.workloads] == ["default"]
    assert s.duration == 10 and s.open_loop


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "scenarios:\n  a:\n    executor: ramping-vu\n",
            "scenarios.a.executor: must be one of ramping-vus, constant-vus",
        ),
        (
            "scenarios:\n  a:\n" + SCENARIO_ENTRY + "    startTime: soon\n",
            "scenarios.a.startTime: 'soon' is not a duration",
        ),
        (
            "scenarios:\n  a:\n" + SCENARIO_ENTRY + "    startTime: -5\n",
            "startTime: -5 is negative",
        ),
        (
            "scenarios:\n  a:\n" + SCENARIO_ENTRY + "  a:\n" + SCENARIO_ENTRY,
            "found the key 'a' twice",
        ),
        (
            "scenarios:\n  a:\n" + SCENARIO_ENTRY + "    rate: 5\n",
            "scenarios.a.rate: does not apply",
        ),
        (
            "scenarios:\n  a:\n" + SCENARIO_ENTRY + "    stage: []\n",
            "scenarios.a.stage: unknown key; did you mean 'stages'",
        ),
        (
            "executor: constant-vus\nscenarios:\n  a:\n" + SCENARIO_ENTRY,
            "executor: goes inside each entry of scenarios:",
        ),
        ("scenarios: {}\n", "scenarios: must be a mapping of name"),
        ("scenarios:\n  a: 3\n", "scenarios.a: must be a mapping"),
        ("scenarios:\n  'a b':\n" + SCENARIO_ENTRY, "name must be a short identifier"),
        (
            "scenarios:\n  a:\n"
            + SCENARIO_ENTRY
            + "thresholds:\n  'checks{scenario:b}': ['rate>0.9']\n",
            r"thresholds: 'checks\{scenario:b\}': no scenario 'b' \(scenarios: a\)",
        ),
        (ARRIVAL + "startTime: 5s\n", "startTime: belongs in an entry of scenarios:"),
        (
            ARRIVAL + "thresholds:\n  'checks{scenario:browse}': ['rate>0.9']\n",
            r"no scenario 'browse' \(scenarios: default\)",
        ),
    ],
)
def test_bad_scenarios_entries_name_the_scenario_and_the_key(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as err:
        loads(text, source="my.yaml", env={})
    assert str(err.value).startswith("my.yaml")
