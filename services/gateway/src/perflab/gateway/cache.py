"""Cache-aside for product reads in Redis, with a TTL and in-process request coalescing.

On a miss, concurrent requests for the same key in this process share one load instead of
all hitting the database at once (stampede protection; switchable for the cache experiment).
If Redis fails, reads fall through to the loader: a cache outage costs latency, not errors.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from perflab.common.faults import FaultFlags
from perflab.gateway.ratelimit import Lookup

log = logging.getLogger(__name__)

CACHE_REQUESTS = Counter(
    "cache_requests_total", "Cache look-ups by result (hit, miss, error).", ["cache", "result"]
)
CACHE_COALESCED = Counter(
    "cache_coalesced_total", "Misses that waited for a load already in flight.", ["cache"]
)


class ReadThroughCache:
    def __init__(
        self,
        redis: Redis,
        name: str,
        prefix: str,
        ttl_seconds: int,
        enabled: bool = True,
        coalesce: bool = True,
        faults: FaultFlags | None = None,
    ):
        self._redis = redis
        self._name = name
        self._prefix = f"{prefix}cache:{name}:"
        self._ttl = ttl_seconds
        self.enabled = enabled
        self._coalesce = coalesce
        self._faults = faults
        for result in ("hit", "miss", "error"):
            CACHE_REQUESTS.labels(name, result)  # the series exist before the first request
        CACHE_COALESCED.labels(name)
        self._inflight: dict[str, asyncio.Future[bytes]] = {}

    def redis_key(self, key: str) -> str | None:
        """The Redis key behind `key`, for a caller that reads it in a round trip it makes
        anyway (the rate limit's); None when the cache is off or (injected fault) down."""
        if not self.enabled or (self._faults and self._faults.value("cache_unavailable")):
            return None
        return self._prefix + key

    async def get(
        self, key: str, load: Callable[[], Awaitable[bytes]], known: Lookup | None = None
    ) -> bytes:
        """The cached value of `key`, else `load()`'s, stored. `known`: the key already read
        in this request (see `redis_key`), so the look-up costs no round trip of its own."""
        if not self.enabled:
            return await load()
        full_key = self._prefix + key
        try:
            if self._faults and self._faults.value("cache_unavailable"):
                raise RedisError("cache unavailable (injected fault)")
            cached: bytes | str | None
            if known is not None and known.key == full_key:
                cached = known.value
            else:
                cached = await self._redis.get(full_key)
        except RedisError as exc:
            CACHE_REQUESTS.labels(self._name, "error").inc()
            log.warning("cache read failed; reading through", extra={"error": repr(exc)})
            return await load()
        if cached is not None:
            CACHE_REQUESTS.labels(self._name, "hit").inc()
            return cached if isinstance(cached, bytes) else cached.encode()
        CACHE_REQUESTS.labels(self._name, "miss").inc()
        if not self._coalesce:
            return await self._load_and_store(full_key, load)
        inflight = self._inflight.get(full_key)
        if inflight is not None:
            CACHE_COALESCED.labels(self._name).inc()
            return await asyncio.shield(inflight)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[full_key] = future
        try:
            value = await self._load_and_store(full_key, load)
            future.set_result(value)
            return value
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters get it, nobody warns of it
            raise
        finally:
            if not future.done():
                future.cancel()  # the loading request was cancelled; waiters see that too
            del self._inflight[full_key]

    async def _load_and_store(self, full_key: str, load: Callable[[], Awaitable[bytes]]) -> bytes:
        value = await load()
        try:
            await self._redis.set(full_key, value, ex=self._ttl)
        except RedisError as exc:
            log.warning("cache write failed", extra={"error": repr(exc)})
        return value
