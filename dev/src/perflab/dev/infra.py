"""Reaching the real infrastructure from tests: start it if needed, isolate each test, and
remove what an isolated run left (its topics and Redis keys)."""

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from perflab.common.kafka_admin import create_topics, topic_names
from perflab.dev.processes import Infra, port_open

REPO = Path(__file__).resolve().parents[4]


def ensure_infra(infra: Infra) -> bool:
    """Starts the local infrastructure unless all of it already answers (idempotent).
    Returns whether it started it (then the caller stops it with `stop_infra`)."""
    if all(port_open(infra.host, int(p)) for p in (infra.postgres, infra.redis, infra.kafka)):
        return False
    subprocess.run([str(REPO / "scripts" / "local-infra.sh"), "up"], check=True, cwd=REPO)
    return True


def stop_infra() -> None:
    """Stops what `local-infra.sh up` started (its pid files; nothing a user started)."""
    subprocess.run([str(REPO / "scripts" / "local-infra.sh"), "down"], check=True, cwd=REPO)


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


async def admin_connection(infra: Infra) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=infra.host, port=int(infra.postgres), user="perflab", database="postgres"
    )


@asynccontextmanager
async def fresh_database(infra: Infra, migrations: str | None = None) -> AsyncIterator[str]:
    """A new empty database (migrated with `migrations`, e.g. "perflab.orders:migrations"),
    dropped afterwards. Yields its SQLAlchemy URL. Connects anew to drop it: PostgreSQL may
    have been restarted meanwhile (the chaos suite does that)."""
    from perflab.common.migrate import upgrade

    name = unique("test_")
    admin = await admin_connection(infra)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        url = infra.database_url(name)
        if migrations:
            await asyncio.to_thread(upgrade, migrations, url)
        yield url
    finally:
        admin = await admin_connection(infra)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def fresh_topics(infra: Infra, partitions: int = 3) -> str:
    """Creates the perflab topics under a new prefix; returns the prefix."""
    prefix = unique() + "."
    await create_topics(infra.kafka_bootstrap, prefix, partitions)
    return prefix


async def delete_topics(infra: Infra, prefix: str) -> None:
    """Deletes the perflab topics under `prefix`."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topic_names(prefix))
    finally:
        await admin.close()


def forget_redis_prefix(infra: Infra, prefix: str) -> int:
    """Deletes every Redis key under `prefix`; returns how many there were."""
    import redis

    client = redis.Redis.from_url(infra.redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        return len(keys)
    finally:
        client.close()
