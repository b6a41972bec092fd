"""The gateway application: `create_app(settings)` builds it; its clients (clients.py) are
opened and closed by its lifespan."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import REGISTRY, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from redis.asyncio import Redis

from perflab.common.faults import FaultFlags
from perflab.common.metrics import LATENCY_BUCKETS, observe
from perflab.gateway.clients import open_clients
from perflab.gateway.deps import ClientsDep
from perflab.gateway.errors import grpc_error_handler
from perflab.gateway.middleware import (
    AdmissionControl,
    BodySizeLimit,
    InjectedFaults,
    TraceIdHeader,
)
from perflab.gateway.routes import router
from perflab.gateway.settings import Settings

log = logging.getLogger(__name__)

HTTP_SERVER_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP requests (OpenTelemetry http.server.request.duration), with exemplars.",
    ["http_route", "http_request_method", "http_response_status_code"],
    buckets=LATENCY_BUCKETS,
)


def _request_duration_with_exemplars(info: metrics.Info) -> None:
    observe(
        HTTP_SERVER_DURATION,
        info.modified_duration,
        http_route=info.modified_handler,
        http_request_method=info.method,
        http_response_status_code=info.modified_status,
    )


UNMONITORED = ["/metrics", "/healthz", "/readyz"]


def create_app(settings: Settings, faults: FaultFlags | None = None) -> FastAPI:
    """The app; its clients are opened by its lifespan. `faults`: the fault switches its
    middleware reads (a test passes its own to flip them without Redis)."""
    if faults is None:
        faults = FaultFlags(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_clients(settings, faults) as clients:
            app.state.clients = clients
            yield

    app = FastAPI(
        title="perflab gateway",
        version="0.1.0",
        summary="The public HTTP API of the perflab shop.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.add_exception_handler(grpc.aio.AioRpcError, grpc_error_handler)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(clients: ClientsDep) -> JSONResponse:
        """Ready: Redis and the orders service answer."""
        checks = dict(
            zip(
                ("redis", "orders"),
                await asyncio.gather(
                    _redis_ok(clients.redis),
                    _orders_ok(clients.orders_channel),
                    return_exceptions=False,
                ),
                strict=True,
            )
        )
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    instrumentator = Instrumentator(excluded_handlers=UNMONITORED, should_group_status_codes=False)
    instrumentator.add(metrics.default(latency_lowr_buckets=LATENCY_BUCKETS))
    instrumentator.add(_request_duration_with_exemplars)
    instrumentator.instrument(app)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        # OpenMetrics when Prometheus asks for it: the only format that carries exemplars
        # (the trace ids on latency buckets).
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(REGISTRY), media_type=content_type)

    app.add_middleware(InjectedFaults, faults=faults, excluded=UNMONITORED)
    app.add_middleware(
        AdmissionControl,
        excluded=UNMONITORED,
        max_in_flight=settings.max_in_flight,
        budget=settings.request_budget_seconds,
    )
    app.add_middleware(TraceIdHeader)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # No spans for each ASGI send/receive: two extra spans per request that say nothing the
    # server span does not (their cost showed in the gateway's profile).
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=",".join(UNMONITORED), exclude_spans=["receive", "send"]
    )
    return app


async def _redis_ok(redis: Redis) -> bool:
    try:
        return bool(await redis.ping())
    except Exception:
        return False


async def _orders_ok(channel: grpc.aio.Channel) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
    except grpc.aio.AioRpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING  # type: ignore[no-any-return]
