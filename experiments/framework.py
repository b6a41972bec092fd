"""What an experiment declares: question, hypothesis, the arms (a baseline and the change,
differing in configuration, a runtime fault or a DDL the experiment applies and reverts), the
load profile, and what to report. `experiments/<name>/experiment.py` defines `EXPERIMENT`."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from perflab.dev.processes import SERVICES

if TYPE_CHECKING:
    from experiments.phase_metrics import PhaseMetrics

HERE = Path(__file__).resolve().parent


class Target(Protocol):
    """What a hook gets: the target's context, experiments.local.LocalContext (local) or
    experiments.cluster.ClusterContext (kind). A hook that needs more than this (the cluster's
    HPAs) runs on that target alone and checks which one it got."""

    experiment: Experiment
    quick: bool
    out_dir: Path
    data: dict[str, Any]  # what the report shows (plans, seed timing): meta.json's `context`

    @property
    def gateway_url(self) -> str: ...

    def sql(self, statement: str, *args: Any, database: str = "orders") -> list[dict[str, Any]]:
        """Runs one statement on the orders (or payments) database."""
        ...

    def set_fault(self, name: str, value: float) -> None: ...

    def flush_cache(self) -> int:
        """Empties the gateway's cache; returns how many keys were removed."""
        ...


# Runs at a point of the experiment (setup, teardown, an arm's start, before a phase).
Hook = Callable[[Target], None]
# The experiment's own figures from one phase's metrics.
Resources = Callable[["PhaseMetrics"], dict[str, float]]
# {"records": the phases, "meta": meta.json} -> (a Markdown section, its figures).
Analysis = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class LoadProfile:
    """One phase of load, run by the load-test runner (`python -m loadtests run`).

    Open loop (constant-arrival-rate, `rate` iterations/s) where latency is the question;
    closed loop (constant-vus, `vus`) where throughput at a given concurrency is."""

    journeys: dict[str, int]
    executor: str = "constant-arrival-rate"
    rate: float = 50.0
    vus: int = 10
    duration_s: float = 30.0
    warmup_s: float = 5.0
    max_vus: int = 200
    think_time_s: float = 0.0
    http_timeout_s: float = 10.0
    catalog_size: int = 10_000
    focus: str = ""  # the endpoint whose latency is the answer ("" = all requests)

    def scenario(self, name: str, duration_s: float) -> dict[str, Any]:
        """The scenario file (as a dict) for the load-test runner."""
        doc: dict[str, Any] = {
            "name": name,
            "description": f"experiment phase {name}",
            "executor": self.executor,
            "journeys": self.journeys,
            "thinkTime": f"{int(self.think_time_s * 1000)}ms",
            "catalogSize": self.catalog_size,
            "httpTimeout": f"{int(self.http_timeout_s)}s",
            "gracefulStop": f"{int(self.http_timeout_s)}s",
        }
        if self.executor == "constant-arrival-rate":
            doc |= {
                "rate": self.rate,
                "timeUnit": "1s",
                "duration": f"{int(duration_s)}s",
                "preAllocatedVUs": min(self.max_vus, max(5, int(self.rate // 4))),
                "maxVUs": self.max_vus,
            }
        elif self.executor == "constant-vus":
            doc |= {"vus": self.vus, "duration": f"{int(duration_s)}s"}
        else:
            raise ValueError(f"executor {self.executor!r} is not supported by the experiments")
        return doc

    @property
    def open_loop(self) -> bool:
        return self.executor.endswith("arrival-rate")


@dataclass(frozen=True)
class Arm:
    """One configuration under test. `env` is merged into the isolated stack's environment per
    service (the services restart when it changes); `faults` are set at runtime; `enter` runs
    when the arm starts (e.g. a DDL); `load` overrides the experiment's load profile."""

    key: str
    label: str
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    faults: dict[str, float] = field(default_factory=dict)
    enter: Hook | None = None
    before_phase: Hook | None = None  # before every phase of this arm (e.g. empty the cache)
    load: LoadProfile | None = None
    x: float | None = None  # numeric position (e.g. concurrency) for sweeps


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    question: str
    hypothesis: str
    change: str  # the one thing that differs between the arms, in words
    arms: list[Arm]
    load: LoadProfile
    quick_load: LoadProfile | None = None
    reps: int = 5  # rounds; each has one phase of every arm (A B, then B A, ...)
    quick_reps: int = 1  # a smoke run checks that the experiment works; it concludes nothing
    targets: tuple[str, ...] = ("local",)
    base_env: dict[str, dict[str, str]] = field(default_factory=dict)
    base_faults: dict[str, float] = field(default_factory=dict)
    products: int = 10_000
    # the services the question needs (reads need no Kafka, worker or payments)
    services: tuple[str, ...] = SERVICES
    setup: Hook | None = None  # after the stack is up, before the first phase
    teardown: Hook | None = None  # always, before the stack goes away
    resources: Resources | None = None
    # Seconds to wait after each phase until no order is PENDING, so a backlog left by one
    # arm does not run into the next; the time it took is recorded as `drain_s`.
    drain_s: float = 0.0
    # On kind: hold every service at one replica (its HPA patched to 1..1, restored at the
    # end), so autoscaling cannot differ between the arms. Off for the autoscaling experiment.
    pin_replicas: bool = True
    headline: tuple[str, ...] = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "error_rate")
    analysis: Analysis | None = None
    limits: tuple[str, ...] = ()
    skip_reason: Callable[[str], str | None] | None = None  # target -> why it cannot run
    notes: str = ""

    def __post_init__(self) -> None:
        if len(self.arms) < 2:
            raise ValueError(f"{self.name}: an experiment needs a baseline and at least one change")

    @property
    def baseline(self) -> Arm:
        return self.arms[0]

    def arm(self, key: str) -> Arm:
        return next(a for a in self.arms if a.key == key)

    def env_for(self, arm: Arm) -> dict[str, dict[str, str]]:
        """The services' environment in `arm`: the experiment's base, then the arm's own."""
        services = set(self.base_env) | set(arm.env)
        return {s: {**self.base_env.get(s, {}), **arm.env.get(s, {})} for s in sorted(services)}

    def faults_for(self, arm: Arm) -> dict[str, float]:
        """Every fault any arm sets, at 0 unless the base or `arm` sets it."""
        names = set(self.base_faults) | {f for a in self.arms for f in a.faults}
        values = {n: 0.0 for n in names}
        return values | self.base_faults | arm.faults

    def load_for(self, arm: Arm, quick: bool) -> LoadProfile:
        base = (self.quick_load or self.load) if quick else self.load
        if arm.load is None:
            return base
        if quick and self.quick_load is not None:
            # keep the arm's own shape (rate, vus) but the quick durations
            return replace(arm.load, duration_s=base.duration_s, warmup_s=base.warmup_s)
        return arm.load

    def why_not(self, target: str) -> str | None:
        if self.skip_reason is not None and (reason := self.skip_reason(target)):
            return reason
        if target not in self.targets:
            return f"{self.name} runs on {', '.join(self.targets)}, not on {target}"
        return None


def directory(name: str) -> Path:
    return HERE / name


def names() -> list[str]:
    return sorted(p.parent.name for p in HERE.glob("*/experiment.py"))


def load(name: str) -> Experiment:
    path = directory(name) / "experiment.py"
    if not path.exists():
        raise SystemExit(f"no experiment {name!r}; known: {', '.join(names())}")
    spec = importlib.util.spec_from_file_location(
        f"experiments._defs.{name.replace('-', '_')}", path
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    experiment: Experiment = module.EXPERIMENT
    if experiment.name != name:
        raise SystemExit(f"{path}: EXPERIMENT.name is {experiment.name!r}, expected {name!r}")
    return experiment
