"""The lab's six Grafana dashboards, one module each, by the chart file each is written to."""

from collections.abc import Callable

from dashboards.boards.async_pipeline import async_pipeline
from dashboards.boards.autoscaling import autoscaling
from dashboards.boards.datastores import data_stores
from dashboards.boards.overview import overview
from dashboards.boards.service import service_detail
from dashboards.boards.slo import slos
from dashboards.grafana import Dashboard

DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "overview.json": overview,
    "service.json": service_detail,
    "async.json": async_pipeline,
    "autoscaling.json": autoscaling,
    "datastores.json": data_stores,
    "slo.json": slos,
}
