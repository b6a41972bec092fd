"""Per-client rate limit in Redis (fixed window, via the `limits` library).

The client is the `X-Client-Id` header when present, else the peer address. Policy when
Redis is unreachable: fail open (serve the request, count it in
`rate_limit_decisions_total{decision="error"}`): a cache outage must not become an outage.
"""

import logging
import math
import time

from fastapi import HTTPException, Request
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from prometheus_client import Counter

log = logging.getLogger(__name__)

DECISIONS = Counter(
    "rate_limit_decisions_total", "Rate limiter decisions (allowed, limited, error).", ["decision"]
)


for _decision in ("allowed", "limited", "error"):
    DECISIONS.labels(_decision)


class RateLimiter:
    def __init__(self, redis_url: str, prefix: str, requests: int, window_seconds: int):
        self._storage = RedisStorage(
            redis_url, implementation="redispy", key_prefix=f"{prefix}ratelimit"
        )
        self._limiter = FixedWindowRateLimiter(self._storage)
        self._item = RateLimitItemPerSecond(requests, window_seconds)

    async def check(self, request: Request) -> None:
        client = request.headers.get("x-client-id") or (
            request.client.host if request.client else "unknown"
        )
        try:
            allowed = await self._limiter.hit(self._item, client[:128])
            if allowed:
                DECISIONS.labels("allowed").inc()
                return
            stats = await self._limiter.get_window_stats(self._item, client[:128])
        except Exception as exc:  # the storage wraps driver errors in several types
            DECISIONS.labels("error").inc()
            log.warning("rate limiter unavailable; failing open", extra={"error": repr(exc)})
            return
        DECISIONS.labels("limited").inc()
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise HTTPException(
            status_code=429,
            detail=f"rate limit of {self._item.amount} requests per "
            f"{self._item.multiples}s exceeded for client {client!r}",
            headers={"Retry-After": str(retry_after)},
        )
