"""Per-client rate limit in Redis (a fixed window), checked in the same round trip as the
route's cache look-up where it has one.

The client is the `X-Client-Id` header when present, else the peer address. One Lua script
counts the hit (INCR; the window starts with its first hit, PEXPIRE), returns the window's
remaining time when the client is over the limit and, when asked, the cached value of a key.
So a cached product read costs one Redis round trip and one command instead of three (the
`limits` library's counter script, its expiry, then the cache GET), which its profile showed
as most of the gateway's time. Policy when Redis is unreachable: fail open (serve the
request, count it in `rate_limit_decisions_total{decision="error"}`): a cache outage must not
become an outage.
"""

import logging
import math
from dataclasses import dataclass

from fastapi import HTTPException, Request
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

DECISIONS = Counter(
    "rate_limit_decisions_total", "Rate limiter decisions (allowed, limited, error).", ["decision"]
)


for _decision in ("allowed", "limited", "error"):
    DECISIONS.labels(_decision)

# KEYS[1] the client's counter, KEYS[2] (optional) a key to read; ARGV window ms, limit.
_HIT_AND_GET = """
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local wait_ms = 0
if hits > tonumber(ARGV[2]) then wait_ms = redis.call('PTTL', KEYS[1]) end
local value = false
if #KEYS > 1 then value = redis.call('GET', KEYS[2]) end
return {hits, wait_ms, value}
"""


@dataclass(frozen=True)
class Lookup:
    """A cache key read along with the rate limit: its value, None when absent."""

    key: str
    value: bytes | None


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str, requests: int, window_seconds: int):
        self._script = redis.register_script(_HIT_AND_GET)
        self._prefix = f"{prefix}ratelimit:"
        self.requests = requests
        self.window_seconds = window_seconds

    async def check(self, request: Request, read: str | None = None) -> Lookup | None:
        """Counts the request; 429 with Retry-After when the client is over its limit. With
        `read`, also reads that Redis key in the same round trip (None when Redis failed)."""
        client = request.headers.get("x-client-id") or (
            request.client.host if request.client else "unknown"
        )
        keys = [self._prefix + client[:128], *([read] if read else [])]
        try:
            hits, wait_ms, value = await self._script(
                keys=keys, args=[self.window_seconds * 1000, self.requests]
            )
        except RedisError as exc:
            DECISIONS.labels("error").inc()
            log.warning("rate limiter unavailable; failing open", extra={"error": repr(exc)})
            return None
        if int(hits) <= self.requests:
            DECISIONS.labels("allowed").inc()
            return Lookup(read, value or None) if read else None
        DECISIONS.labels("limited").inc()
        raise HTTPException(
            status_code=429,
            detail=f"rate limit of {self.requests} requests per "
            f"{self.window_seconds}s exceeded for client {client!r}",
            headers={"Retry-After": str(max(1, math.ceil(int(wait_ms) / 1000)))},
        )
