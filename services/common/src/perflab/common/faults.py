"""Faults on demand: named switches a user flips at runtime while a load test runs.

The switches live in one Redis hash (`FAULTS_KEY`); every service polls it about once a second
and applies the faults that concern it. Set them with `make fault NAME=... VALUE=...`, the
gateway's admin endpoint (`PUT /admin/faults/{name}` on the admin port, never the public one)
or `python -m perflab.common.faults set NAME VALUE`. If Redis is unreachable the services keep
the last values they saw. Each active fault is exported as `perflab_fault_value{fault}` so the
dashboards can show when a fault was on.
"""

import argparse
import asyncio
import contextlib
import logging
import random
import sys
from dataclasses import dataclass

from prometheus_client import Gauge
from pydantic import Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from perflab.common.settings import LOCAL_REDIS_URL, EnvSettings

log = logging.getLogger(__name__)

FAULT_VALUE = Gauge(
    "perflab_fault_value", "Current value of each injected fault (0 = off).", ["fault"]
)


@dataclass(frozen=True)
class Fault:
    service: str
    maximum: float
    description: str


FAULTS: dict[str, Fault] = {
    "payments_latency_ms": Fault(
        "payments", 60_000, "Extra latency of every charge, in ms: the queue absorbs slow payments."
    ),
    "payments_error_rate": Fault(
        "payments", 1, "Share of charges failing with UNAVAILABLE: retries and the circuit breaker."
    ),
    "payments_unreachable": Fault(
        "payments", 1, "1 = charges hang until the caller's deadline: timeouts, deadline budget."
    ),
    "worker_delay_ms": Fault(
        "worker", 60_000, "Extra time per message in the worker, in ms: consumer lag builds up."
    ),
    "poison_rate": Fault(
        "orders", 1, "Share of orders followed by an undecodable event: the dead-letter path."
    ),
    "cache_unavailable": Fault(
        "gateway", 1, "1 = the product cache fails: reads fall back to the database."
    ),
    "db_slow_ms": Fault(
        "orders", 10_000, "pg_sleep added to each orders transaction, in ms: pool waits, latency."
    ),
    "cpu_burn_ms": Fault(
        "gateway", 1_000, "CPU burnt per gateway request, in ms: the HPA scales out."
    ),
    "memory_leak_kb": Fault(
        "gateway", 1_024, "KiB the gateway keeps per request, forever: the soak test finds it."
    ),
}


class FaultError(ValueError):
    pass


def validate(name: str, value: float) -> float:
    fault = FAULTS.get(name)
    if fault is None:
        raise FaultError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
    if not 0 <= value <= fault.maximum:
        raise FaultError(f"{name} must be between 0 and {fault.maximum:g}, got {value:g}")
    return value


class FaultSettings(EnvSettings):
    faults_redis_url: str = Field(
        default=LOCAL_REDIS_URL, description="Redis holding the fault switches."
    )
    faults_key: str = Field(default="perflab:faults", description="Hash of the fault switches.")
    faults_poll_seconds: float = Field(default=1.0, gt=0, description="How often to look.")


class FaultFlags:
    """The current fault values, refreshed in the background from Redis."""

    def __init__(self, settings: FaultSettings, rng: random.Random | None = None):
        self._settings = settings
        self._values: dict[str, float] = {}
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._redis: Redis | None = None

    def value(self, name: str) -> float:
        return self._values.get(name, 0.0)

    def chance(self, name: str) -> bool:
        """True with the probability the fault's value gives (for rate faults)."""
        rate = self.value(name)
        return rate > 0 and self._rng.random() < rate

    def set_local(self, name: str, value: float) -> None:
        """For tests: set a value without Redis."""
        self._values[name] = validate(name, value)

    async def start(self) -> None:
        self._redis = Redis.from_url(
            self._settings.faults_redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        try:
            await self.refresh()
        except (RedisError, OSError) as exc:
            log.warning("fault switches unreadable; none active", extra={"error": repr(exc)})
        self._task = asyncio.create_task(self._poll(), name="fault-flags")

    async def refresh(self) -> None:
        assert self._redis is not None
        values = await read_faults(self._redis, self._settings.faults_key)
        for name, value in values.items():
            if value != self._values.get(name, 0.0):
                log.warning("fault changed", extra={"fault": name, "value": value})
            FAULT_VALUE.labels(name).set(value)
        self._values = values

    async def _poll(self) -> None:
        unreachable = False
        while True:
            await asyncio.sleep(self._settings.faults_poll_seconds)
            try:
                await self.refresh()
                unreachable = False
            except (RedisError, OSError) as exc:
                if not unreachable:
                    log.warning(
                        "fault switches unreadable; keeping the last values",
                        extra={"error": repr(exc)},
                    )
                unreachable = True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            await self._redis.aclose()


async def set_fault(redis: Redis, key: str, name: str, value: float) -> None:
    value = validate(name, value)
    if value == 0:
        await redis.hdel(key, name)
    else:
        await redis.hset(key, name, str(value))


async def read_faults(redis: Redis, key: str) -> dict[str, float]:
    """Every known fault with its value (0 = off); values no service would accept count as 0."""
    values = dict.fromkeys(FAULTS, 0.0)
    for key_, value in (await redis.hgetall(key)).items():
        name = key_.decode() if isinstance(key_, bytes) else key_
        with contextlib.suppress(ValueError):  # unknown name, not a number, out of range
            values[name] = validate(name, float(value))
    return values


async def _cli(args: argparse.Namespace) -> None:
    settings = FaultSettings()
    redis = Redis.from_url(settings.faults_redis_url)
    try:
        if args.command == "set":
            await set_fault(redis, settings.faults_key, args.name, args.value)
        elif args.command == "reset":
            await redis.delete(settings.faults_key)
        values = await read_faults(redis, settings.faults_key)
    finally:
        await redis.aclose()
    for name, fault in FAULTS.items():
        state = f"{values[name]:g}" if values[name] else "off"
        print(f"{name:22} {state:>8}  [{fault.service}] {fault.description}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Show, set or reset the perflab faults.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("list")
    setter = sub.add_parser("set")
    setter.add_argument("name", choices=sorted(FAULTS))
    setter.add_argument("value", type=float)
    sub.add_parser("reset", help="switch every fault off")
    args = parser.parse_args()
    try:
        asyncio.run(_cli(args))
    except FaultError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
