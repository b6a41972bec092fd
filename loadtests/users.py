"""The virtual users: a run's context (its workloads, their journeys and figures) and the
Locust user classes whose VUs walk the journeys, closed loop (one iteration after another) or
open loop (when the arrival scheduler hands them one).

Imports Locust (gevent's monkey-patching): only a load-generating process imports it."""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import AsyncResult
from locust import between, constant, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from loadtests.journeys import BUILTIN, Catalog
from loadtests.metrics import RunState
from loadtests.scenario import Scenario, ScenarioError, Workload

if TYPE_CHECKING:
    from loadtests.executors import ArrivalScheduler


def resolve_journey(name: str) -> Callable[[Any], None]:
    if name in BUILTIN:
        return BUILTIN[name]
    module_name, _, attr = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ScenarioError(f"journey {name!r}: cannot import: {exc}") from None
    if not callable(fn):
        raise ScenarioError(f"journey {name!r} is not a function")
    return fn


@dataclass
class WorkloadRun:
    """One workload of the run (an entry of ``scenarios:``): its journeys, its VUs' class, its
    driver and its own figures."""

    workload: Workload
    state: RunState  # its own figures; the run's own state when it is the only workload
    states: tuple[RunState, ...]  # where its VUs record: the run's state and its own
    journeys: list[tuple[str, Callable[[Any], None]]]
    weights: list[float]
    scheduler: ArrivalScheduler | None = None
    user_class: type[JourneyUser] | None = None
    done: bool = False  # its schedule and its gracefulStop are over, its VUs stopped


@dataclass
class RunContext:
    scenario: Scenario
    state: RunState  # the whole run's figures
    run_id: str
    workloads: dict[str, WorkloadRun]
    catalog: Catalog
    vu_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def only(self) -> WorkloadRun:
        """The workload of a single-scenario file (the Locust command line runs only those)."""
        [wr] = self.workloads.values()
        return wr


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S") + f"{random.randrange(16**6):06x}"


def new_context(scenario: Scenario, run_id: str) -> RunContext:
    state = RunState()
    single = len(scenario.workloads) == 1
    workloads = {}
    for w in scenario.workloads:
        own = state if single else RunState()
        workloads[w.name] = WorkloadRun(
            workload=w,
            state=own,
            states=(state,) if single else (state, own),
            journeys=[(name, resolve_journey(name)) for name in w.journeys],
            weights=list(w.journeys.values()),
        )
    return RunContext(
        scenario=scenario,
        state=state,
        run_id=run_id,
        workloads=workloads,
        catalog=Catalog(scenario.catalog_size),
    )


def make_user_class(ctx: RunContext, host: str | None, wr: WorkloadRun) -> type[JourneyUser]:
    """A workload's virtual-user class: open-loop VUs wait for the scheduler, closed-loop VUs
    loop over iterations with think time between them."""
    w = wr.workload
    base = OpenLoopUser if w.open_loop else ClosedLoopUser
    attrs: dict[str, Any] = {
        "abstract": False,
        "ctx": ctx,
        "wr": wr,
        "host": host,
        "network_timeout": ctx.scenario.http_timeout,
        "connection_timeout": ctx.scenario.http_timeout,
    }
    if not w.open_loop:
        attrs["wait_time"] = between(*w.think_time)
    name = "VirtualUser" if len(ctx.workloads) == 1 else f"VirtualUser_{w.name}"
    wr.user_class = type(name, (base,), attrs)
    return wr.user_class


class JourneyUser(FastHttpUser):
    """A virtual user: its own HTTP connections, customer id, rate-limit client id and RNG."""

    abstract = True
    ctx: RunContext
    wr: WorkloadRun

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.vu_id = next(self.ctx.vu_ids)
        self.customer_id = f"lt-{self.ctx.run_id}-{self.vu_id}"
        self.headers = {"X-Client-Id": self.customer_id}
        self.rng = random.Random()
        self.catalog = self.ctx.catalog
        self.pending: float | None = None  # an iteration handed over before this VU started
        self.slot: AsyncResult | None = None

    # the VU interface journeys use (loadtests.journeys.VU)
    def get(self, path: str, name: str) -> Any:
        return self.client.get(path, name=name, headers=self.headers)

    def post(self, path: str, name: str, json: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            path, name=name, json=json, headers={**self.headers, **(headers or {})}
        )

    def context(self) -> dict[str, Any]:
        """Tags every request with its workload (k6's ``scenario`` tag)."""
        return {"scenario": self.wr.workload.name}

    def think(self) -> None:
        low, high = self.wr.workload.think_time
        if high > 0:
            gevent.sleep(self.rng.uniform(low, high))

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def check(self, name: str, ok: bool) -> bool:
        for state in self.wr.states:
            state.check(name, ok)
        return ok

    def run_iteration(self, scheduled: float | None) -> None:
        """One iteration; ``scheduled`` is its planned start (perf_counter) for open-loop runs."""
        states = self.wr.states
        name, journey = self.rng.choices(self.wr.journeys, weights=self.wr.weights)[0]
        started = time.perf_counter()
        origin = started if scheduled is None else min(scheduled, started)
        delay = None if scheduled is None else (started - origin) * 1000
        for state in states:
            state.iteration_started(name, delay_ms=delay)
            state.vus_busy += 1
        completed = False
        try:
            journey(self)
            completed = True
        except gevent.GreenletExit:
            for state in states:
                state.interrupted += 1
            raise
        finally:
            duration = (time.perf_counter() - origin) * 1000
            for state in states:
                state.vus_busy -= 1
                if completed:
                    state.iteration_finished(name, duration)


class ClosedLoopUser(JourneyUser):
    abstract = True

    @task
    def iterate(self) -> None:
        self.run_iteration(None)


class OpenLoopUser(JourneyUser):
    abstract = True
    wait_time = constant(0)

    @task
    def iterate(self) -> None:
        while self.wr.scheduler is None:  # a worker whose start message is still on its way
            gevent.sleep(0.1)
        self.run_iteration(self.wr.scheduler.take(self))
