"""Every client the gateway's routes talk to, in one typed object.

`open_clients(settings, faults)` builds them in the app's lifespan and closes them there, in
the reverse order, even when start-up fails half-way. The routes receive the object through
one dependency (`ClientsDep` in deps.py), so tests swap it with `app.dependency_overrides`.
"""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import grpc
from redis.asyncio import Redis

from perflab.common.faults import FaultFlags
from perflab.common.grpc import insecure_channel
from perflab.contracts.orders.v1.orders_pb2_grpc import OrdersServiceStub
from perflab.gateway.cache import ReadThroughCache
from perflab.gateway.idempotency import IdempotencyStore
from perflab.gateway.ratelimit import RateLimiter
from perflab.gateway.settings import Settings

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


@dataclass(frozen=True, slots=True)
class Clients:
    """The settings the clients were built from, and the clients. One Redis client serves the
    cache, the idempotency keys and the rate limit; the fault switches poll their own."""

    settings: Settings
    redis: Redis
    orders_channel: grpc.aio.Channel
    orders: OrdersServiceStub
    faults: FaultFlags
    product_cache: ReadThroughCache
    idempotency: IdempotencyStore
    rate_limiter: RateLimiter | None  # None: RATE_LIMIT_ENABLED=false


@asynccontextmanager
async def open_clients(settings: Settings, faults: FaultFlags) -> AsyncIterator[Clients]:
    """The gateway's clients, connected; closed on the way out. `faults` is created with the
    app (its middleware holds it) and started and stopped here."""
    async with AsyncExitStack() as stack:
        redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
        stack.push_async_callback(redis.aclose)
        channel = insecure_channel(settings.orders_addr, READ_RETRY_POLICY)
        stack.push_async_callback(channel.close)
        await faults.start()
        stack.push_async_callback(faults.stop)
        prefix = settings.redis_key_prefix
        product_cache = ReadThroughCache(
            redis, "products", prefix, settings.cache_ttl_seconds,
            enabled=settings.cache_enabled, coalesce=settings.cache_coalesce, faults=faults,
        )  # fmt: skip
        rate_limiter = None
        if settings.rate_limit_enabled:
            rate_limiter = RateLimiter(
                redis, prefix, settings.rate_limit_requests, settings.rate_limit_window_seconds
            )
        yield Clients(
            settings=settings,
            redis=redis,
            orders_channel=channel,
            orders=OrdersServiceStub(channel),
            faults=faults,
            product_cache=product_cache,
            idempotency=IdempotencyStore(redis, prefix, settings.idempotency_ttl_seconds),
            rate_limiter=rate_limiter,
        )
