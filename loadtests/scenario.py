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

COMMON_KEYS = {
    "name",
    "description",
    "executor",
    "journeys",
    "thinkTime",
    "catalogSize",
    "httpTimeout",
    "gracefulStop",
    "thresholds",
    "variants",
}
EXECUTOR_KEYS = {
    RAMPING_VUS: {"startVUs", "stages", "gracefulRampDown"},
    CONSTANT_VUS: {"vus", "duration"},
    CONSTANT_ARRIVAL_RATE: {"rate", "timeUnit", "duration", "preAllocatedVUs", "maxVUs"},
    RAMPING_ARRIVAL_RATE: {"startRate", "timeUnit", "stages", "preAllocatedVUs", "maxVUs"},
}
ALL_KEYS = COMMON_KEYS.union(*EXECUTOR_KEYS.values())

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_IMPORT_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


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
    if seconds < 1:
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
class Scenario:
    name: str
    description: str
    source: str
    variant: str | None
    executor: str
    schedule: Schedule  # VUs for the VU executors, iterations per second for the arrival-rate ones
    pre_allocated_vus: int
    max_vus: int
    graceful_stop: float
    journeys: dict[str, float]
    think_time: tuple[float, float]
    catalog_size: int
    http_timeout: float
    thresholds: tuple[Threshold, ...]
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    # ramping-vus: how long a VU that a falling stage removes may finish its iteration
    graceful_ramp_down: float = 30.0

    @property
    def open_loop(self) -> bool:
        return self.executor in OPEN_LOOP

    @property
    def duration(self) -> float:
        return self.schedule.duration

    @property
    def unit(self) -> str:
        return "iters/s" if self.open_loop else "VUs"


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
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario is a YAML mapping (executor:, stages:, ...)")
    return validate(data, source=source, variant=variant)


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
        data = {**data, **overrides}
    where = f"{source}" + (f" (variant {variant})" if variant else "")
    return _Validator(data, where).scenario(Path(source).stem, source, variant)


class _Validator:
    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(f"{self.where}: {key}: {message}")

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
        unknown = set(data) - ALL_KEYS
        for key in sorted(unknown, key=str):
            close = difflib.get_close_matches(str(key), ALL_KEYS, n=1)
            raise self.fail(
                str(key), "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
            )
        executor = data.get("executor")
        if executor not in EXECUTORS:
            raise self.fail("executor", f"must be one of {', '.join(EXECUTORS)}, not {executor!r}")
        foreign = {k for k in data if k not in COMMON_KEYS and k not in EXECUTOR_KEYS[executor]}
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

        try:
            thresholds = parse_thresholds(data.get("thresholds"), parse_duration)
        except (ThresholdError, ValueError) as exc:
            raise ScenarioError(f"{self.where}: thresholds: {exc}") from None

        name = data.get("name", stem if re.match(r"^[A-Za-z0-9][\w.-]*$", stem) else "scenario")
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][\w.-]*$", name):
            raise self.fail("name", f"must be a short identifier such as 'load', not {name!r}")
        return Scenario(
            name=name,
            description=str(data.get("description", "")).strip(),
            source=source,
            variant=variant,
            executor=executor,
            schedule=schedule,
            pre_allocated_vus=pre,
            max_vus=maximum,
            graceful_stop=self.duration("gracefulStop", "30s"),
            journeys=self.journeys(),
            think_time=self.think_time(),
            catalog_size=int(self.number("catalogSize", 10000, minimum=1, integer=True)),
            http_timeout=self.duration("httpTimeout", "30s"),
            thresholds=thresholds,
            raw=data,
            graceful_ramp_down=self.duration("gracefulRampDown", "30s"),
        )
