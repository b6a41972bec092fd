"""Idempotency-Key handling for POST /api/orders, kept in Redis.

Redis answers replays fast and catches a reused key with a different body; the orders
service's unique idempotency key is the guarantee behind it, so even a Redis outage or
eviction never creates a second order.
"""

import hashlib
import json
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class KeyReused(Exception):
    """The key was used before with a different request."""


def fingerprint(body: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, redis: Redis, prefix: str, ttl_seconds: int):
        self._redis = redis
        self._prefix = f"{prefix}idempotency:"
        self._ttl = ttl_seconds

    async def lookup(self, key: str, request_fingerprint: str) -> bytes | None:
        """The stored response for this key, None if unknown (or Redis is down)."""
        try:
            stored = await self._redis.hgetall(self._prefix + key)
        except RedisError as exc:
            log.warning("idempotency lookup failed; orders will dedupe", extra={"error": repr(exc)})
            return None
        if not stored:
            return None
        fields = {_bytes(k): _bytes(v) for k, v in stored.items()}
        if fields.get(b"fingerprint", b"").decode() != request_fingerprint:
            raise KeyReused("Idempotency-Key was already used with a different request body")
        return fields.get(b"response")

    async def save(self, key: str, request_fingerprint: str, response: bytes) -> None:
        full_key = self._prefix + key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hsetnx(full_key, "fingerprint", request_fingerprint)
                pipe.hsetnx(full_key, "response", response)
                pipe.expire(full_key, self._ttl)
                await pipe.execute()
        except RedisError as exc:
            log.warning("idempotency save failed", extra={"error": repr(exc)})
