"""FastAPI dependencies as `Annotated` aliases. The routes' clients come as one object,
`ClientsDep`, built in the lifespan (clients.py); tests swap it with
`app.dependency_overrides[get_clients]`. One dependency rather than one per client: each is an
await per request, and FastAPI resolves `ClientsDep` once per request however many use it.
They are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread pool, a
thread hop per dependency per request."""

from typing import Annotated

from fastapi import Depends, Path, Request

from perflab.gateway.clients import Clients
from perflab.gateway.ratelimit import Lookup
from perflab.gateway.schemas import INT64_MAX


async def get_clients(request: Request) -> Clients:
    return request.app.state.clients  # type: ignore[no-any-return]


ClientsDep = Annotated[Clients, Depends(get_clients)]


async def rate_limit(request: Request, clients: ClientsDep) -> None:
    limiter = clients.rate_limiter
    if limiter is not None:
        await limiter.check(request)


ProductId = Annotated[int, Path(gt=0, le=INT64_MAX)]


async def rate_limit_and_read_product(
    product_id: ProductId, request: Request, clients: ClientsDep
) -> Lookup | None:
    """The rate limit and the product's cache look-up in one Redis round trip."""
    limiter = clients.rate_limiter
    if limiter is None:
        return None
    return await limiter.check(request, read=clients.product_cache.redis_key(str(product_id)))


# Use instead of `rate_limit` on a product read: the look-up rides along with the limit.
RateLimitedProductLookup = Annotated[Lookup | None, Depends(rate_limit_and_read_product)]
