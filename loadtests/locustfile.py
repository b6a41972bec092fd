"""Entry point for Locust's own command line, with the same scenario files as
``python -m loadtests run``. The chart's in-cluster master and workers run it
(``locust -f /loadtests/locustfile.py --master`` / ``--worker``); it also gives a local web UI:

    SCENARIO=load VARIANT=ci locust -f loadtests/locustfile.py --host http://127.0.0.1:18080

Environment: SCENARIO (a shipped name or a path; default smoke), VARIANT, the scenario's own
variables (RATE, DURATION, ...), LOADTEST_METRICS (master's /metrics address, default
0.0.0.0:19105, ``off`` to disable), LOADTEST_RESULTS (a folder for summary.json and the
report; default: none, the summary is printed), LOADTEST_PROGRESS_EVERY (seconds, default 10).

Distributed runs: the master runs the stage curve (closed loop) or holds the pre-allocated VUs
(open loop) through a LoadTestShape; for open-loop scenarios the master tells worker i of W to
take iterations i, i + W, i + 2W, ... of the whole schedule (interleaved, not W schedules in
lockstep) from a common wall-clock start, with 1/W of maxVUs. Workers send their
iteration, dropped-iteration and check counts to the master with their statistics; the master
judges the thresholds (abortOnFail included) and sets the exit code.

A file with several scenarios runs here when all of them are arrival-rate ones: one user class
per scenario (its pre-allocated VUs as the class's fixed_count), each worker runs every
scenario's share from the common start plus its startTime and reports each one's figures.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

# In the image this folder is /loadtests: make its parent importable, so `import loadtests` works.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gevent
from locust import LoadTestShape, events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests import exporter, report
from loadtests.controller import Controller, Options
from loadtests.executors import ArrivalScheduler, StagesShape, class_vus
from loadtests.figures import record_requests
from loadtests.generator import GeneratorMonitor
from loadtests.scenario import find, load
from loadtests.users import make_user_class, new_context, new_run_id

SCENARIO = load(
    find(os.environ.get("SCENARIO") or "smoke"), variant=os.environ.get("VARIANT") or None
)
if SCENARIO.only is None and not SCENARIO.open_loop:
    raise SystemExit(
        f"{SCENARIO.source}: has closed-loop scenarios among several, or one with a startTime"
        f" ({', '.join(f'{w.name} [{w.executor}]' for w in SCENARIO.workloads)}); Locust's own"
        " command line (web UI, master and workers) runs one scenario that starts at once, or"
        " several arrival-rate ones; run this one with python -m loadtests run"
    )
CTX = new_context(SCENARIO, new_run_id())
USER_CLASSES = [make_user_class(CTX, None, wr) for wr in CTX.workloads.values()]
PRE_ALLOCATED = sum(w.pre_allocated_vus for w in SCENARIO.workloads)
globals().update({cls.__name__: cls for cls in USER_CLASSES})  # where Locust finds them
if SCENARIO.only is None:  # each scenario's pre-allocated VUs, whatever the weights
    for wr in CTX.workloads.values():
        assert wr.user_class is not None
        wr.user_class.fixed_count = wr.workload.pre_allocated_vus
START_MESSAGE = "loadtests:start"

if SCENARIO.open_loop:

    class ScenarioShape(LoadTestShape):
        """Open loop: keep the pre-allocated VUs while the workers' schedulers run."""

        def tick(self) -> tuple[int, float] | None:
            over = self.get_run_time() - SCENARIO.duration
            # after the schedule: stop once every generator has finished its schedule with no
            # iteration in flight (workers say so in their reports, every few seconds), or
            # when gracefulStop is over
            if over >= SCENARIO.graceful_stop or (over >= 0 and all_done()):
                return None
            return PRE_ALLOCATED, float(min(PRE_ALLOCATED, 100))

    def all_done() -> bool:
        if isinstance(Session.runner, MasterRunner):
            exports = list(Session.worker_exports.values())
            expected = Session.runner.worker_count
            return len(exports) >= expected > 0 and all(
                e.get("finished") and e["busy"] == 0 for e in exports
            )
        return schedules_finished() and CTX.state.vus_busy == 0

else:
    WORKLOAD = CTX.only.workload

    class ScenarioShape(StagesShape):  # type: ignore[no-redef]
        """Closed loop: the VU curve of the stages."""

        abstract = False

        def __init__(self) -> None:
            super().__init__(WORKLOAD.schedule, WORKLOAD.graceful_ramp_down, WORKLOAD.graceful_stop)


def schedules_finished() -> bool:
    return all(wr.scheduler is not None and wr.scheduler.finished for wr in CTX.workloads.values())


class Session:
    """The master's (or a standalone process's) side of the run."""

    controller: Controller | None = None
    watcher: gevent.Greenlet | None = None
    server: Any = None
    worker_exports: dict[str, dict[str, Any]] = {}
    monitor: GeneratorMonitor | None = None  # a worker's own
    runner: Any = None


def start_scheduler(
    environment: Environment, index: int = 0, count: int = 1, start_at: float | None = None
) -> None:
    """Run this process's share of each arrival schedule: iterations index, index + count, ...
    of the whole schedule, from the wall-clock time ``start_at`` plus the scenario's startTime
    (the same for every worker, so their starts interleave instead of firing in lockstep)."""
    runner = environment.runner
    assert runner is not None
    for wr in CTX.workloads.values():
        assert wr.user_class is not None
        # with several scenarios, each counts its own VUs against its maxVUs
        vus = (
            None if SCENARIO.only else functools.partial(class_vus, runner, wr.user_class.__name__)
        )
        wr.scheduler = ArrivalScheduler(runner, wr.user_class, wr, index, count, vus=vus)
    if isinstance(runner, WorkerRunner):
        Session.monitor = GeneratorMonitor(lambda: not schedules_finished())
        gevent.spawn(Session.monitor.run)
    began = time.perf_counter()
    if start_at is not None:
        began += start_at - time.time()
    for wr in CTX.workloads.values():
        assert wr.scheduler is not None
        gevent.spawn(wr.scheduler.run, began + wr.workload.start_time)


@events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    for user_class in USER_CLASSES:
        user_class.host = environment.host
    runner = environment.runner
    Session.runner = runner
    if isinstance(runner, WorkerRunner):

        def on_start(environment: Environment, msg: Any, **_: Any) -> None:
            data = msg.data
            # the host may come before Locust's own spawn message, which otherwise sets it
            for user_class in USER_CLASSES:
                user_class.host = user_class.host or data["host"]
            start_scheduler(environment, int(data["index"]), int(data["workers"]), data["start_at"])

        runner.register_message(START_MESSAGE, on_start)
        record_requests(environment, CTX)

        def report(client_id: str, data: dict[str, Any]) -> None:
            monitor = Session.monitor
            data["loadtests"] = CTX.state.export() | {
                "generator": monitor.verdict() if monitor and monitor.windows else None,
                "finished": schedules_finished(),
            }
            if SCENARIO.only is None:  # each scenario's own figures too
                data["loadtests"]["scenarios"] = {
                    name: wr.state.export() for name, wr in CTX.workloads.items()
                }

        events.report_to_master.add_listener(report)
        return

    results = os.environ.get("LOADTEST_RESULTS")
    options = Options(
        target=environment.host or "",
        out_dir=Path(results) if results else None,
        progress_every=float(os.environ.get("LOADTEST_PROGRESS_EVERY", "10")),
    )
    Session.controller = Controller(CTX, options, env=environment)
    metrics = os.environ.get("LOADTEST_METRICS", "0.0.0.0:19105")
    if metrics not in ("", "off", "0"):
        Session.server = exporter.serve(Session.controller, metrics)
    if isinstance(runner, MasterRunner):

        def on_worker_report(client_id: str, data: dict[str, Any]) -> None:
            if "loadtests" in data:
                Session.worker_exports[client_id] = data["loadtests"]
                exports = list(Session.worker_exports.values())
                CTX.state.absorb(exports)
                CTX.state.absorb_window(data["loadtests"])
                if SCENARIO.only is None:
                    for name, wr in CTX.workloads.items():
                        wr.state.absorb([e["scenarios"][name] for e in exports if "scenarios" in e])
                controller = Session.controller
                if controller is not None:
                    controller.worker_generators = [
                        e["generator"] for e in exports if e.get("generator")
                    ]

        events.worker_report.add_listener(on_worker_report)


def watch(environment: Environment, controller: Controller) -> None:
    while controller.running:
        gevent.sleep(1.0)
        controller.tick()
        if controller.aborted and environment.runner is not None:
            headless = bool(environment.parsed_options and environment.parsed_options.headless)
            environment.runner.quit() if headless else environment.runner.stop()
            return


@events.test_start.add_listener
def on_test_start(environment: Environment, **_: Any) -> None:
    controller, runner = Session.controller, environment.runner
    if controller is None or runner is None:  # a worker
        return
    Session.worker_exports.clear()
    controller.begin()
    if not isinstance(runner, MasterRunner):  # standalone: this process generates the load
        controller.monitor = GeneratorMonitor(lambda: controller.schedule_end is None)
        gevent.spawn(controller.monitor.run)
    Session.watcher = gevent.spawn(watch, environment, controller)
    if SCENARIO.open_loop:
        if isinstance(runner, MasterRunner):
            workers = sorted(client.id for client in runner.clients.all)
            start_at = time.time() + 0.5  # every worker receives its message before this
            for index, client_id in enumerate(workers):
                runner.send_message(
                    START_MESSAGE,
                    {
                        "workers": len(workers),
                        "index": index,
                        "start_at": start_at,
                        "host": environment.host,
                    },
                    client_id=client_id,
                )
        else:
            start_scheduler(environment)


@events.test_stop.add_listener
def on_test_stop(environment: Environment, **_: Any) -> None:
    controller = Session.controller
    if controller is None or not controller.running:
        return
    summary = controller.finish()
    if controller.options.out_dir:
        controller.out_dir.mkdir(parents=True, exist_ok=True)
        controller.write_artifacts(summary)
    controller.options.echo(report.render(summary))
    environment.process_exit_code = int(summary["run"]["exit_code"])


@events.quitting.add_listener
def on_quitting(environment: Environment, **_: Any) -> None:
    if Session.server is not None:
        Session.server.stop()
