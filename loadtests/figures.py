"""The run's figures: every request recorded into the run's and its workload's state, the
figures thresholds are judged on, and the summary's rows (endpoints, trends, checks, each
workload's own figures). No Locust import: it reads what the VUs recorded."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from loadtests.metrics import RunState, Trend, merged
from loadtests.thresholds import Result

if TYPE_CHECKING:
    from locust.env import Environment

    from loadtests.results import RawWriter
    from loadtests.users import RunContext, WorkloadRun


def wire_sizes(response: Any, body_length: int) -> tuple[int, int]:
    """Bytes of one exchange as HTTP/1.1 put them on the connection: the request the client
    sent (request line, headers, body) and the response (status line, headers, body as
    received); TCP and TLS overhead are not counted."""
    head = getattr(response, "_sent_request", None) or ""  # request line and headers only
    body = _CONTENT_LENGTH.search(head)
    sent = len(head) + (int(body[1]) if body else 0)
    headers = getattr(response, "headers", None)
    received = body_length
    if headers:
        received += len("HTTP/1.1 200 OK\r\n\r\n") + sum(
            len(k) + len(v) + 4 for k, v in headers.items()
        )
    return sent, received


_CONTENT_LENGTH = re.compile(r"^content-length:\s*(\d+)", re.IGNORECASE | re.MULTILINE)


def record_requests(env: Environment, ctx: RunContext, raw: RawWriter | None = None) -> None:
    """Every request into the run state and its workload's (HDR histograms per endpoint,
    bytes), whatever Locust keeps for its own report; and into ``raw`` when given."""
    routes = {name: wr.states for name, wr in ctx.workloads.items()}
    default = (ctx.state,)

    def on_request(
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: BaseException | None = None,
        response: Any = None,
        context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        sent, received = wire_sizes(response, response_length or 0)
        failed = exception is not None
        scenario = (context or {}).get("scenario", "")
        for state in routes.get(scenario, default):
            state.request(request_type, name, response_time, failed, sent, received)
        if raw is not None:
            started = kwargs.get("start_time") or time.time() - response_time / 1000
            row = (round(started, 6), request_type, name, round(response_time, 3))
            raw.write((*row, int(failed), sent, received, scenario))

    env.events.request.add_listener(on_request)


class Figures:
    """thresholds.MetricSource over the run state, or a workload's state when the threshold
    names a ``scenario``. Counter rates divide by ``seconds(scenario)``: the elapsed part of
    the schedule, or of that workload's schedule (the drain after it is not load)."""

    def __init__(self, ctx: RunContext, seconds: Callable[[str | None], float]) -> None:
        self.ctx = ctx
        self.seconds = seconds

    def state_of(self, tags: Mapping[str, str]) -> RunState:
        scenario = tags.get("scenario")
        return self.ctx.state if scenario is None else self.ctx.workloads[scenario].state

    def trend(self, metric: str, tags: Mapping[str, str]) -> Trend | None:
        state = self.state_of(tags)
        if metric == "iteration_duration":
            return state.merged_iteration_duration(tags.get("journey"))
        if metric == "iteration_start_delay":
            return state.start_delay
        return state.http_duration(tags.get("name"), tags.get("method"))

    def rate(self, metric: str, tags: Mapping[str, str]) -> tuple[int, int]:
        state = self.state_of(tags)
        if metric == "checks":
            items = [v for k, v in state.checks.items() if tags.get("check") in (None, k)]
            return sum(p for p, _ in items), sum(p + f for p, f in items)
        chosen = state.select(tags.get("name"), tags.get("method"))
        return sum(e.failures for e in chosen), sum(e.requests for e in chosen)

    def counter(self, metric: str, tags: Mapping[str, str]) -> tuple[float, float]:
        state = self.state_of(tags)
        seconds = self.seconds(tags.get("scenario"))
        if metric == "dropped_iterations":
            return state.dropped, seconds
        if metric == "iterations":
            return sum(
                n for j, n in state.iterations.items() if tags.get("journey") in (None, j)
            ), seconds
        if metric in ("data_sent", "data_received"):
            return float(getattr(state, metric)), seconds
        chosen = state.select(tags.get("name"), tags.get("method"))
        return sum(e.requests for e in chosen), seconds


def describe(result: Result) -> dict[str, Any]:
    t = result.threshold
    return {
        "metric": t.key,
        "condition": t.condition,
        "ok": result.ok,
        "observed": result.describe(),
        "value": result.observed,
        "abort_on_fail": t.abort_on_fail,
    }


PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def rounded(values: dict[float, float | None]) -> dict[float, float | None]:
    return {k: None if v is None else round(v, 3) for k, v in values.items()}


def trend_figures(trend: Trend | None) -> dict[str, float | None]:
    """min, med, avg, p90, p95, p99, max of a trend (ms); None without samples."""
    if trend is None or not trend.count:
        return dict.fromkeys(("min", "med", "avg", "p90", "p95", "p99", "max"))
    p = trend.percentiles(PERCENTILES)
    return {
        "min": trend.min,
        "med": p[50.0],
        "avg": trend.avg,
        "p90": p[90.0],
        "p95": p[95.0],
        "p99": p[99.0],
        "max": trend.max,
    }


def endpoint_row(
    method: str, name: str, requests: int, failures: int, duration: Trend | None, seconds: float
) -> dict[str, Any]:
    figures = trend_figures(duration)
    return {
        "name": name,
        "method": method,
        "requests": requests,
        "failures": failures,
        "failure_rate": failures / requests if requests else 0.0,
        "rate": requests / seconds if seconds > 0 else 0.0,
        **figures,
        "p50": figures["med"],  # the same figure under its percentile name
    }


def endpoint_rows(state: RunState, seconds: float) -> dict[str, Any]:
    """``endpoints`` (one row per method and name) and their ``total``."""
    endpoints = sorted(state.endpoints.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    return {
        "endpoints": [
            endpoint_row(m, n, e.requests, e.failures, e.duration, seconds)
            for (m, n), e in endpoints
        ],
        "total": endpoint_row(
            "",
            "TOTAL",
            state.requests,
            state.failures,
            merged(e.duration for e in state.endpoints.values()),
            seconds,
        ),
    }


def check_rows(state: RunState) -> list[dict[str, Any]]:
    return [{"name": k, "passes": v[0], "fails": v[1]} for k, v in sorted(state.checks.items())]


def workload_summary(wr: WorkloadRun, elapsed: float) -> dict[str, Any]:
    """One workload's figures; its rates are over its own schedule (from its startTime)."""
    w, state = wr.workload, wr.state
    seconds = min(max(elapsed - w.start_time, 0.0), w.duration)
    iterations = sum(state.iterations.values())
    return {
        "name": w.name,
        "executor": w.executor,
        "start_s": w.start_time,
        "duration_s": w.duration,
        "schedule_s": round(seconds, 3),
        "unit": w.unit,
        "target_peak": w.schedule.peak,
        "journeys": w.journeys,
        "iterations": iterations,
        "iterations_per_s": iterations / seconds if seconds > 0 else 0.0,
        "dropped_iterations": state.dropped,
        "interrupted_iterations": state.interrupted,
        "vus_max_used": state.vus_max_used,
        "max_vus": w.max_vus or None,
        "iteration_duration": trend_figures(
            state.merged_iteration_duration() if state.iteration_duration else None
        ),
        "iteration_start_delay": trend_figures(
            state.start_delay if state.start_delay.count else None
        ),
        **endpoint_rows(state, seconds),
        "checks": check_rows(state),
    }
