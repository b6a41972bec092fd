"""Scenario files: YAML in, a validated ``Scenario`` out, or a ``ScenarioError`` that says which
key is wrong and why. The format is documented in loadtests/README.md.

Pure Python (PyYAML only), so validation runs without starting Locust.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loadtests.schedule import Schedule, Stage
from loadtests.thresholds import Threshold, ThresholdError, parse_thresholds

RAMPING_VUS = "ramping-vus"
CONSTANT_VUS = "constant-vus"
CONSTANT_ARRIVAL_RATE = "constant-arrival-rate"
RAMPING_ARRIVAL_RATE = "ramping-arrival-rate"
EXECUTORS = (RAMPING_VUS, CONSTANT_VUS, CONSTANT_ARRIVAL_RATE, RAMPING_ARRIVAL_RATE)
OPEN_LOOP = (CONSTANT_ARRIVAL_RATE, RAMPING_ARRIVAL_RATE)

BUILTIN_JOURNEYS = ("browse", "product", "buy", "history")

TARGETS = {"local": "http://127.0.0.1:18080", "kind": "http://localhost:8080"}
SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"

# keys of the file as a whole; a variant overrides them
FILE_KEYS = {"name", "description", "catalogSize", "httpTimeout", "thresholds", "variants"}
# keys of every scenario whatever its executor; at the top of a file with `scenarios:` they are
# defaults for each scenario (all but executor and startTime)
WORKLOAD_KEYS = {"executor", "startTime", "journeys", "thinkTime", "gracefulStop"}
WORKLOAD_DEFAULTS = WORKLOAD_KEYS - {"executor", "startTime"}
COMMON_KEYS = FILE_KEYS | WORKLOAD_KEYS
EXECUTOR_KEYS = {
    RAMPING_VUS: {"startVUs", "stages", "gracefulRampDown"},
    CONSTANT_VUS: {"vus", "duration"},
    CONSTANT_ARRIVAL_RATE: {"rate", "timeUnit", "duration", "preAllocatedVUs", "maxVUs"},
    RAMPING_ARRIVAL_RATE: {"startRate", "timeUnit", "stages", "preAllocatedVUs", "maxVUs"},
}
ALL_KEYS = COMMON_KEYS.union(*EXECUTOR_KEYS.values()) | {"scenarios"}
DEFAULT_SCENARIO = "default"  # the one scenario of a file without `scenarios:`

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_IMPORT_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file and the key."""


def parse_duration(value: object) -> float:
    """``1h30m``, ``90s``, ``500ms``, ``2.5m`` or a plain number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    text = str(value).strip()
    if not text:
        raise ValueError("empty duration")
    pos, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        number, unit = float(match[1]), match[2]
        seconds += number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 5m, 1h30m, 500ms)")
    return seconds


def format_duration(seconds: float) -> str:
    seconds = round(seconds, 3)
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    frac = seconds - int(seconds)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if secs or frac or not (hours or minutes):
        parts.append(f"{secs + frac:g}s")
    return "".join(parts)


def find(name: str | Path) -> Path:
    """A path, or the name of a shipped scenario (``load`` -> loadtests/scenarios/load.yaml)."""
    path = Path(name)
    if path.exists() or path.suffix:
        return path
    shipped = SCENARIOS_DIR / f"{name}.yaml"
    try:
        return shipped.relative_to(Path.cwd())
    except ValueError:
        return shipped


def resolve_target(target: str) -> str:
    """``local`` | ``kind`` | ``http(s)://host:port`` -> base URL without a trailing slash."""
    if target in TARGETS:
        return TARGETS[target]
    if re.match(r"^https?://[^/\s]+", target):
        return target.rstrip("/")
    raise ScenarioError(f"TARGET={target!r}: use local, kind or a URL such as http://host:8080")


def interpolate_env(text: str, env: Mapping[str, str], source: str) -> str:
    """Replace ``${NAME}`` and ``${NAME:-default}`` (empty counts as unset, as in the shell)."""

    def replace(match: re.Match[str]) -> str:
        name, default = match[1], match[2]
        value = env.get(name, "")
        if value:
            return value
        if default is not None:
            return default
        raise ScenarioError(
            f"{source}: needs the environment variable {name} (or write ${{{name}:-default}})"
        )

    return _ENV_REF.sub(replace, text)


@dataclass(frozen=True)
class Workload:
    """One named entry of ``scenarios:`` (k6 calls it a scenario; here the file is the
    ``Scenario``): an executor and its schedule, from ``start_time`` seconds into the run."""

    name: str
    executor: str
    schedule: Schedule  # VUs for the VU executors, iterations per second for the arrival-rate ones
    pre_allocated_vus: int
    max_vus: int
    graceful_stop: float
    journeys: dict[str, float]
    think_time: tuple[float, float]
    start_time: float = 0.0
    # ramping-vus: how long a VU that a falling stage removes may finish its iteration
    graceful_ramp_down: float = 30.0

    @property
    def open_loop(self) -> bool:
        return self.executor in OPEN_LOOP

    @property
    def duration(self) -> float:
        return self.schedule.duration

    @property
    def end(self) -> float:
        """When its schedule ends, in seconds since the start of the run."""
        return self.start_time + self.schedule.duration

    @property
    def unit(self) -> str:
        return "iters/s" if self.open_loop else "VUs"

    def target_at(self, elapsed: float) -> float:
        """Its target ``elapsed`` seconds into the run: 0 before its startTime, its last
        stage's target once its schedule is over."""
        t = elapsed - self.start_time
        return 0.0 if t < 0 else self.schedule.target_at(min(t, self.duration))


@dataclass(frozen=True)
class Scenario:
    """A scenario file: one or more workloads (``scenarios:``) run concurrently, judged by one
    set of thresholds. A file without ``scenarios:`` is one workload named ``default``."""

    name: str
    description: str
    source: str
    variant: str | None
    workloads: tuple[Workload, ...]
    catalog_size: int
    http_timeout: float
    thresholds: tuple[Threshold, ...]
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def duration(self) -> float:
        """The schedule of the whole run: until the last workload's schedule ends."""
        return max(w.end for w in self.workloads)

    @property
    def open_loop(self) -> bool:
        return all(w.open_loop for w in self.workloads)

    @property
    def executor(self) -> str:
        executors = dict.fromkeys(w.executor for w in self.workloads)
        return ", ".join(executors)

    @property
    def graceful_stop(self) -> float:
        """How long after the end of the whole schedule the run may drain."""
        return max(w.end + w.graceful_stop for w in self.workloads) - self.duration

    @property
    def only(self) -> Workload | None:
        """The workload of a file without ``scenarios:`` (or with one that starts at once),
        which runs as one executor; None when there are several or one starts later."""
        if len(self.workloads) == 1 and self.workloads[0].start_time == 0:
            return self.workloads[0]
        return None

    def workload(self, name: str) -> Workload:
        return next(w for w in self.workloads if w.name == name)


def load(
    path: str | Path,
    variant: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Scenario:
    """Read, interpolate, merge the variant and validate one scenario file."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"{source}: cannot read: {exc.strerror}") from exc
    return loads(text, source=source, variant=variant, env=os.environ if env is None else env)


def loads(
    text: str,
    source: str = "<scenario>",
    variant: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Scenario:
    text = interpolate_env(text, env or {}, source)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario is a YAML mapping (executor:, stages:, ...)")
    return validate(data, source=source, variant=variant)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (by
    default the last one silently wins: two scenarios with the same name would become one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice (each name may appear once)",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _merge_variant(data: dict[str, Any], overrides: dict[str, Any], where: str) -> dict[str, Any]:
    """Top-level keys are replaced; ``scenarios`` is merged per scenario and per key, so a
    variant can shorten one scenario without repeating the others."""
    merged = {**data, **overrides}
    if isinstance(data.get("scenarios"), dict) and isinstance(overrides.get("scenarios"), dict):
        scenarios = dict(data["scenarios"])
        for name, entry in overrides["scenarios"].items():
            if name not in scenarios:
                known = ", ".join(map(str, scenarios))
                raise ScenarioError(
                    f"{where}.scenarios.{name}: no such scenario (scenarios: {known})"
                )
            base = scenarios[name]
            if isinstance(base, dict) and isinstance(entry, dict):
                scenarios[name] = {**base, **entry}
            else:
                scenarios[name] = entry
        merged["scenarios"] = scenarios
    return merged


def validate(
    data: dict[str, Any], source: str = "<scenario>", variant: str | None = None
) -> Scenario:
    variants = data.get("variants") or {}
    if not isinstance(variants, dict):
        raise ScenarioError(f"{source}: variants must be a mapping of name -> overrides")
    if variant:
        if variant not in variants:
            known = ", ".join(sorted(variants)) or "none"
            raise ScenarioError(f"{source}: no variant {variant!r} (variants: {known})")
        overrides = variants[variant]
        if not isinstance(overrides, dict):
            raise ScenarioError(
                f"{source}: variants.{variant} must be a mapping of keys to override"
            )
        if "variants" in overrides:
            raise ScenarioError(f"{source}: variants.{variant} cannot itself contain variants")
        data = _merge_variant(data, overrides, f"{source}: variants.{variant}")
    where = f"{source}" + (f" (variant {variant})" if variant else "")
    return _Validator(data, where).scenario(Path(source).stem, source, variant)


class _Validator:
    def __init__(self, data: dict[str, Any], where: str, prefix: str = "") -> None:
        """``prefix``: where ``data`` sits in the file (``scenarios.browse.``), for messages."""
        self.data = data
        self.where = where
        self.prefix = prefix

    def fail(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(f"{self.where}: {self.prefix}{key}: {message}")

    def unknown_keys(self, allowed: set[str]) -> None:
        for key in sorted(set(self.data) - allowed, key=str):
            close = difflib.get_close_matches(str(key), allowed, n=1)
            raise self.fail(
                str(key), "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
            )

    def number(
        self, key: str, default: float | None = None, minimum: float = 0, integer: bool = False
    ) -> float:
        value = self.data.get(key, default)
        if value is None:
            raise self.fail(key, "is required")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"must be a number, not {value!r}")
        if integer and int(value) != value:
            raise self.fail(key, f"must be a whole number, not {value!r}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum:g}, not {value!r}")
        return float(value)

    def duration(self, key: str, default: object = None, value: object = None) -> float:
        value = self.data.get(key, default) if value is None else value
        if value is None:
            raise self.fail(key, "is required (e.g. 30s, 5m)")
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def stages(self, scale: float) -> tuple[Stage, ...]:
        raw = self.data.get("stages")
        if not isinstance(raw, list) or not raw:
            raise self.fail("stages", "must be a non-empty list of {duration: 30s, target: N}")
        stages = []
        for index, item in enumerate(raw):
            key = f"stages[{index}]"
            if not isinstance(item, dict) or set(item) != {"duration", "target"}:
                raise self.fail(
                    key, f"must be {{duration: <time>, target: <number>}}, not {item!r}"
                )
            duration = self.duration(f"{key}.duration", value=item["duration"])
            if duration <= 0:
                raise self.fail(f"{key}.duration", "must be longer than 0s")
            target = item["target"]
            if isinstance(target, bool) or not isinstance(target, (int, float)) or target < 0:
                raise self.fail(f"{key}.target", f"must be a number >= 0, not {target!r}")
            stages.append(Stage(duration, target / scale))
        return tuple(stages)

    def journeys(self) -> dict[str, float]:
        raw = self.data.get("journeys", {"browse": 60, "product": 20, "buy": 15, "history": 5})
        if not isinstance(raw, dict) or not raw:
            raise self.fail(
                "journeys", "must be a mapping of journey -> weight, e.g. {browse: 3, buy: 1}"
            )
        journeys = {}
        for name, weight in raw.items():
            name = str(name)
            if name not in BUILTIN_JOURNEYS and not _IMPORT_REF.match(name):
                close = difflib.get_close_matches(name, BUILTIN_JOURNEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.fail(
                    f"journeys.{name}",
                    f"unknown journey (built in: {', '.join(BUILTIN_JOURNEYS)};"
                    f" or module:function){hint}",
                )
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise self.fail(f"journeys.{name}", f"weight must be a number >= 0, not {weight!r}")
            journeys[name] = float(weight)
        if not any(journeys.values()):
            raise self.fail("journeys", "at least one journey needs a weight above 0")
        return journeys

    def think_time(self) -> tuple[float, float]:
        raw = self.data.get("thinkTime", {"min": "1s", "max": "3s"})
        if isinstance(raw, dict):
            if set(raw) != {"min", "max"}:
                raise self.fail("thinkTime", "must be a duration or {min: <time>, max: <time>}")
            low = self.duration("thinkTime.min", value=raw["min"])
            high = self.duration("thinkTime.max", value=raw["max"])
        else:
            low = high = self.duration("thinkTime", value=raw)
        if high < low:
            raise self.fail("thinkTime", "max must not be below min")
        return low, high

    def scenario(self, stem: str, source: str, variant: str | None) -> Scenario:
        data = self.data
        if "scenarios" in data:
            workloads = self.workloads()
        else:
            self.unknown_keys(ALL_KEYS - {"scenarios"})
            if "startTime" in data:
                raise self.fail(
                    "startTime",
                    "belongs in an entry of scenarios: (a file without them starts at once)",
                )
            workloads = (self.workload(DEFAULT_SCENARIO),)

        try:
            thresholds = parse_thresholds(data.get("thresholds"), parse_duration)
        except (ThresholdError, ValueError) as exc:
            raise ScenarioError(f"{self.where}: thresholds: {exc}") from None
        names = [w.name for w in workloads]
        for t in thresholds:
            wanted = dict(t.tags).get("scenario")
            if wanted is not None and wanted not in names:
                raise ScenarioError(
                    f"{self.where}: thresholds: {t.key!r}: no scenario {wanted!r}"
                    f" (scenarios: {', '.join(names)})"
                )

        name = data.get("name", stem if _NAME.match(stem) else "scenario")
        if not isinstance(name, str) or not _NAME.match(name):
            raise self.fail("name", f"must be a short identifier such as 'load', not {name!r}")
        return Scenario(
            name=name,
            description=str(data.get("description", "")).strip(),
            source=source,
            variant=variant,
            workloads=workloads,
            catalog_size=int(self.number("catalogSize", 10000, minimum=1, integer=True)),
            http_timeout=self.duration("httpTimeout", "30s"),
            thresholds=thresholds,
            raw=data,
        )

    def workloads(self) -> tuple[Workload, ...]:
        """``scenarios:``: each entry is a workload; the top level keeps the file's keys and
        defaults for every workload (journeys, thinkTime, gracefulStop)."""
        data = self.data
        for key in sorted(set(data) - FILE_KEYS - WORKLOAD_DEFAULTS - {"scenarios"}, key=str):
            if key in ALL_KEYS:
                raise self.fail(
                    str(key),
                    "goes inside each entry of scenarios: (a file with scenarios: keeps only"
                    f" {', '.join(sorted(FILE_KEYS | WORKLOAD_DEFAULTS))} at the top)",
                )
            self.unknown_keys(FILE_KEYS | WORKLOAD_DEFAULTS | {"scenarios"})
        raw = data["scenarios"]
        if not isinstance(raw, dict) or not raw:
            raise self.fail(
                "scenarios", "must be a mapping of name -> {executor: ..., ...} with at least one"
            )
        defaults = {k: data[k] for k in WORKLOAD_DEFAULTS if k in data}
        workloads = []
        for name, entry in raw.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise self.fail(
                    f"scenarios.{name}", "a scenario's name must be a short identifier (browse)"
                )
            if not isinstance(entry, dict):
                raise self.fail(f"scenarios.{name}", "must be a mapping (executor:, stages:, ...)")
            sub = _Validator({**defaults, **entry}, self.where, f"{self.prefix}scenarios.{name}.")
            sub.unknown_keys(WORKLOAD_KEYS.union(*EXECUTOR_KEYS.values()))
            workloads.append(sub.workload(name))
        return tuple(workloads)

    def workload(self, name: str) -> Workload:
        data = self.data
        executor = data.get("executor")
        if executor not in EXECUTORS:
            raise self.fail("executor", f"must be one of {', '.join(EXECUTORS)}, not {executor!r}")
        foreign = {
            k
            for k in data
            if k in ALL_KEYS
            and k not in COMMON_KEYS | {"scenarios"}
            and k not in EXECUTOR_KEYS[executor]
        }
        if foreign:
            key = sorted(foreign)[0]
            raise self.fail(
                key,
                f"does not apply to executor {executor}"
                f" (it takes {', '.join(sorted(EXECUTOR_KEYS[executor]))})",
            )

        pre, maximum = 0, 0
        if executor == RAMPING_VUS:
            start = self.number("startVUs", 0, integer=True)
            schedule = Schedule(start, self.stages(1.0))
        elif executor == CONSTANT_VUS:
            vus = self.number("vus", minimum=1, integer=True)
            schedule = Schedule(vus, (Stage(self.duration("duration"), vus),))
        else:
            unit = self.duration("timeUnit", "1s")
            if unit <= 0:
                raise self.fail("timeUnit", "must be longer than 0s")
            if executor == CONSTANT_ARRIVAL_RATE:
                rate = self.number("rate") / unit
                schedule = Schedule(rate, (Stage(self.duration("duration"), rate),))
            else:
                schedule = Schedule(self.number("startRate", 0) / unit, self.stages(unit))
            pre = int(self.number("preAllocatedVUs", minimum=1, integer=True))
            maximum = int(self.number("maxVUs", pre, minimum=1, integer=True))
            if maximum < pre:
                raise self.fail("maxVUs", f"must be at least preAllocatedVUs ({pre})")
        if schedule.duration <= 0:
            raise self.fail("duration", "the scenario must run for longer than 0s")
        return Workload(
            name=name,
            executor=executor,
            schedule=schedule,
            pre_allocated_vus=pre,
            max_vus=maximum,
            graceful_stop=self.duration("gracefulStop", "30s"),
            journeys=self.journeys(),
            think_time=self.think_time(),
            start_time=self.duration("startTime", "0s"),
            graceful_ramp_down=self.duration("gracefulRampDown", "30s"),
        )
