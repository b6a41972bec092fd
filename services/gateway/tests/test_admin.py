"""Unit tests of the admin API with a fake Redis swapped in through `dependency_overrides`."""

from collections.abc import AsyncIterator

import httpx
import pytest

from perflab.gateway.admin import create_admin_app, get_redis


class FakeRedis:
    """The hash commands the fault switches use."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}

    async def hgetall(self, key: str) -> dict[str, str]:
        return dict(self.hashes.get(key, {}))

    async def hset(self, key: str, name: str, value: str) -> None:
        self.hashes.setdefault(key, {})[name] = value

    async def hdel(self, key: str, name: str) -> None:
        self.hashes.get(key, {}).pop(name, None)

    async def delete(self, key: str) -> None:
        self.hashes.pop(key, None)


@pytest.fixture
def redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
async def admin(redis: FakeRedis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_admin_app("redis://unused", "faults")

    async def fake_redis() -> FakeRedis:
        return redis

    app.dependency_overrides[get_redis] = fake_redis
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        yield c


async def test_faults_are_set_listed_and_reset(admin: httpx.AsyncClient, redis: FakeRedis) -> None:
    put = await admin.put("/admin/faults/db_slow_ms", json={"value": 20})
    assert put.status_code == 200
    assert put.json()["value"] == 20 and put.json()["service"] == "orders"
    assert redis.hashes["faults"] == {"db_slow_ms": "20.0"}
    listed = {f["name"]: f["value"] for f in (await admin.get("/admin/faults")).json()}
    assert listed["db_slow_ms"] == 20 and listed["cpu_burn_ms"] == 0
    reset = await admin.delete("/admin/faults")
    assert {f["value"] for f in reset.json()} == {0}
    assert "faults" not in redis.hashes


async def test_unknown_and_out_of_range_faults_are_refused(
    admin: httpx.AsyncClient, redis: FakeRedis
) -> None:
    assert (await admin.put("/admin/faults/nope", json={"value": 1})).status_code == 404
    too_big = await admin.put("/admin/faults/payments_error_rate", json={"value": 2})
    assert too_big.status_code == 422 and "between 0 and 1" in too_big.json()["detail"]
    assert redis.hashes == {}
