"""The gateway application: `create_app(settings)` builds it; clients live in the lifespan."""

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
from perflab.common.grpc import insecure_channel
from perflab.common.metrics import LATENCY_BUCKETS, observe
from perflab.contracts.orders.v1.orders_pb2_grpc import OrdersServiceStub
from perflab.gateway.cache import ReadThroughCache
from perflab.gateway.errors import grpc_error_handler
from perflab.gateway.idempotency import IdempotencyStore
from perflab.gateway.middleware import (
    AdmissionControl,
    BodySizeLimit,
    InjectedFaults,
    TraceIdHeader,
)
from perflab.gateway.ratelimit import RateLimiter
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


# Reads are idempotent: gRPC itself retries them on UNAVAILABLE, with jittered exponential
# backoff, and its retry throttling is the retry budget (retries stop while more than half the
# recent calls failed), so retries cannot multiply an outage. Order creation is not retried
# here: the client retries it safely with its Idempotency-Key.
READ_RETRY_POLICY = {
    "methodConfig": [
        {
            "name": [
                {"service": "perflab.contracts.orders.v1.OrdersService", "method": m}
                for m in ("GetProduct", "ListProducts", "GetOrder", "ListCustomerOrders")
            ],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
}


def create_app(settings: Settings) -> FastAPI:
    faults = FaultFlags(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
        channel = insecure_channel(settings.orders_addr, READ_RETRY_POLICY)
        await faults.start()
        app.state.settings = settings
        app.state.redis = redis
        app.state.orders_channel = channel
        app.state.orders = OrdersServiceStub(channel)
        app.state.product_cache = ReadThroughCache(
            redis, "products", settings.redis_key_prefix, settings.cache_ttl_seconds,
            enabled=settings.cache_enabled, coalesce=settings.cache_coalesce, faults=faults,
        )  # fmt: skip
        app.state.idempotency = IdempotencyStore(
            redis, settings.redis_key_prefix, settings.idempotency_ttl_seconds
        )
        app.state.rate_limiter = (
            RateLimiter(
                redis,
                settings.redis_key_prefix,
                settings.rate_limit_requests,
                settings.rate_limit_window_seconds,
            )
            if settings.rate_limit_enabled
            else None
        )
        yield
        await faults.stop()
        await channel.close()
        await redis.aclose()

    app = FastAPI(
        title="perflab gateway",
        version="0.1.0",
        summary="The public HTTP API of the perflab shop.",
        lifespan=lifespan,
    )
    app.state.faults = faults
    app.include_router(router)
    app.add_exception_handler(grpc.aio.AioRpcError, grpc_error_handler)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Ready: Redis and the orders service answer."""
        checks = dict(
            zip(
                ("redis", "orders"),
                await asyncio.gather(_redis_ok(app), _orders_ok(app), return_exceptions=False),
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


async def _redis_ok(app: FastAPI) -> bool:
    try:
        return bool(await app.state.redis.ping())
    except Exception:
        return False


async def _orders_ok(app: FastAPI) -> bool:
    stub = health_pb2_grpc.HealthStub(app.state.orders_channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
    except grpc.aio.AioRpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING  # type: ignore[no-any-return]
