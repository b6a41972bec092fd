"""The executors: how VUs are started and stopped over a workload's schedule. Closed loop
(ramping-vus, constant-vus): Locust's shape follows the VU curve, or, among several workloads,
a driver greenlet per workload. Open loop (constant-/ramping-arrival-rate): the arrival
scheduler starts each iteration at its time whatever the latency.

Imports Locust (gevent's monkey-patching): only a load-generating process imports it."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import gevent
from gevent.event import AsyncResult
from locust import LoadTestShape
from locust.runners import Runner
from locust.user.task import LOCUST_STATE_STOPPING

from loadtests.schedule import Schedule
from loadtests.users import JourneyUser, WorkloadRun


class StagesShape(LoadTestShape):
    """ramping-vus / constant-vus: Locust's own shape mechanism follows the VU curve each second."""

    abstract = True  # instantiated directly, never discovered from a locustfile

    def __init__(
        self, schedule: Schedule, ramp_down: float | None = None, stop: float | None = None
    ) -> None:
        """``ramp_down``/``stop``: how long VUs removed by a falling stage / by the end of the
        schedule may finish their iteration (gracefulRampDown / gracefulStop)."""
        super().__init__()
        self.schedule = schedule
        self.ramp_down, self.stop = ramp_down, stop
        self.last: tuple[int, float] | None = None

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        timeout = self.stop if t >= self.schedule.duration else self.ramp_down
        if self.runner is not None and timeout is not None:
            # Locust gives every stopped VU env.stop_timeout to finish its iteration
            self.runner.environment.stop_timeout = timeout
        if t >= self.schedule.duration:
            return None
        users = round(self.schedule.target_at(t))
        if self.last is None or users != self.last[0]:
            # fast enough to reach the new count well within the one-second tick; the tuple only
            # changes with the count, so Locust is not asked to re-dispatch every second for nothing
            stage = self.schedule.stages[self.schedule.stage_at(t)]
            slope = abs(stage.target - self.schedule.target_at(t - 1)) if t >= 1 else 0.0
            change = abs(users - (self.last[0] if self.last else 0))
            self.last = (users, float(min(max(change * 2, slope * 2, 1), 100)))
        return self.last


class ArrivalScheduler:
    """constant-/ramping-arrival-rate: starts iteration k at its scheduled time whatever the
    system's latency; hands it to an idle VU, starts a new VU while fewer than maxVUs exist, and
    otherwise drops it (counted, never queued: a queue would hide latency again)."""

    def __init__(
        self,
        runner: Runner,
        user_class: type[JourneyUser],
        wr: WorkloadRun,
        index: int = 0,
        count: int = 1,
        vus: Callable[[], int] | None = None,
    ) -> None:
        """``index``/``count``: this process is generator ``index`` of ``count`` (Locust
        workers); it takes every ``count``-th iteration of the whole schedule, starting at the
        ``index``-th, and 1/``count`` of maxVUs. ``vus``: how many VUs the workload has (by
        default every VU of the runner: a single-workload run)."""
        self.runner = runner
        self.user_class = user_class
        self.wr = wr
        self.index, self.count = index, count
        self.schedule = wr.workload.schedule
        self.max_vus = max(1, math.ceil(wr.workload.max_vus / count))
        self.vus = vus or (lambda: runner.user_count)
        self.idle: deque[JourneyUser] = deque()
        self.finished = False

    def take(self, vu: JourneyUser) -> float:
        """Called by a VU's greenlet: block until the scheduler hands it an iteration."""
        if vu.pending is not None:
            scheduled, vu.pending = vu.pending, None
            return scheduled
        vu.slot = AsyncResult()
        self.idle.append(vu)
        return float(vu.slot.get())

    def dispatch(self, scheduled: float) -> None:
        while self.idle:
            vu = self.idle.popleft()
            if vu.slot is not None and not vu.greenlet.dead:
                vu.slot.set(scheduled)
                return
        if self.vus() < self.max_vus:
            [vu] = self.runner.spawn_users({self.user_class.__name__: 1})
            vu.pending = scheduled
            for state in self.wr.states:
                state.vus_max_used = max(state.vus_max_used, self.vus())
            return
        for state in self.wr.states:
            state.dropped += 1

    def run(self, started_at: float) -> None:
        for offset in self.schedule.iteration_times(self.index, self.count):
            due = started_at + offset
            delay = due - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            self.dispatch(due)
        remaining = started_at + self.schedule.duration - time.perf_counter()
        if remaining > 0:
            gevent.sleep(remaining)
        self.finished = True


# Several workloads (``scenarios:``) share one Locust runner, each with its own user class and a
# driver greenlet of its own from its startTime; Locust's shape and stop_timeout are one per
# environment, so the drivers spawn and stop their own class's VUs.


def class_vus(runner: Runner, class_name: str) -> int:
    return runner.user_classes_count.get(class_name, 0)


def users_of(runner: Runner, user_class: type[JourneyUser]) -> list[JourneyUser]:
    return [
        g.args[0] for g in list(runner.user_greenlets) if g.args and type(g.args[0]) is user_class
    ]


def stop_vus(users: list[JourneyUser], timeout: float) -> None:
    """Stop VUs, each after its current iteration, for up to ``timeout`` seconds (its
    workload's gracefulRampDown or gracefulStop); then kill those still running."""
    for user in users:
        if user.greenlet.dead:
            continue
        if timeout <= 0:
            user.stop(force=True)
        elif user._state != LOCUST_STATE_STOPPING:
            user.stop(force=False)
    gevent.joinall([u.greenlet for u in users], timeout=timeout)
    for user in users:
        if not user.greenlet.dead:
            user.stop(force=True)


def sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        gevent.sleep(delay)


def drive_closed_loop(runner: Runner, wr: WorkloadRun, started_at: float) -> None:
    """ramping-vus / constant-vus among several workloads: follow the VU curve once a second
    from ``started_at`` (the run's start plus startTime), as StagesShape does for one."""
    w, user_class = wr.workload, wr.user_class
    assert user_class is not None
    sleep_until(started_at)
    vus: list[JourneyUser] = []
    while (t := time.perf_counter() - started_at) < w.duration:
        vus = [u for u in vus if not u.greenlet.dead]
        want = round(w.schedule.target_at(t))
        if want > len(vus):
            vus += runner.spawn_users({user_class.__name__: want - len(vus)})
        elif want < len(vus):
            gevent.spawn(stop_vus, vus[want:], w.graceful_ramp_down)
            vus = vus[:want]
        wr.state.vus_max_used = max(wr.state.vus_max_used, len(vus))
        gevent.sleep(min(1.0, w.duration - t))
    stop_vus(users_of(runner, user_class), w.graceful_stop)
    wr.done = True


def drive_open_loop(runner: Runner, wr: WorkloadRun, started_at: float) -> None:
    """An arrival-rate workload among several: its scheduler from ``started_at``, then its
    gracefulStop for the iterations in flight, then its VUs stop."""
    w, scheduler = wr.workload, wr.scheduler
    assert scheduler is not None and wr.user_class is not None
    scheduler.run(started_at)
    deadline = started_at + w.duration + w.graceful_stop
    while wr.state.vus_busy and time.perf_counter() < deadline:
        gevent.sleep(0.05)
    stop_vus(users_of(runner, wr.user_class), 0)
    wr.done = True
