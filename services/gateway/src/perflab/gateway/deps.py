"""FastAPI dependencies as `Annotated` aliases; the clients behind them live in app.state,
created in the lifespan, so tests can swap them. They are `async def` on purpose: FastAPI runs
plain `def` dependencies in a thread pool, a thread hop per dependency per request."""

from typing import Annotated

from fastapi import Depends, Path, Request

from perflab.contracts.orders.v1.orders_pb2_grpc import OrdersServiceStub
from perflab.gateway.cache import ReadThroughCache
from perflab.gateway.idempotency import IdempotencyStore
from perflab.gateway.ratelimit import Lookup
from perflab.gateway.schemas import INT64_MAX
from perflab.gateway.settings import Settings


async def _orders(request: Request) -> OrdersServiceStub:
    return request.app.state.orders  # type: ignore[no-any-return]


async def _product_cache(request: Request) -> ReadThroughCache:
    return request.app.state.product_cache  # type: ignore[no-any-return]


async def _idempotency(request: Request) -> IdempotencyStore:
    return request.app.state.idempotency  # type: ignore[no-any-return]


async def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def rate_limit(request: Request) -> None:
    limiter = request.app.state.rate_limiter
    if limiter is not None:
        await limiter.check(request)


ProductId = Annotated[int, Path(gt=0, le=INT64_MAX)]


async def rate_limit_and_read_product(product_id: ProductId, request: Request) -> Lookup | None:
    """The rate limit and the product's cache look-up in one Redis round trip."""
    limiter = request.app.state.rate_limiter
    if limiter is None:
        return None
    cache: ReadThroughCache = request.app.state.product_cache
    return await limiter.check(request, read=cache.redis_key(str(product_id)))  # type: ignore[no-any-return]


OrdersStub = Annotated[OrdersServiceStub, Depends(_orders)]
ProductCache = Annotated[ReadThroughCache, Depends(_product_cache)]
Idempotency = Annotated[IdempotencyStore, Depends(_idempotency)]
SettingsDep = Annotated[Settings, Depends(_settings)]
# Use instead of `rate_limit` on a product read: the look-up rides along with the limit.
RateLimitedProductLookup = Annotated[Lookup | None, Depends(rate_limit_and_read_product)]
