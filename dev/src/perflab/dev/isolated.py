"""One isolated copy of the stack, for the end-to-end tests and the experiments alike.

The copy runs the services on free ports over their own databases (migrated, the catalog
seeded), their own topics and Redis key prefix on the local infrastructure, so it never
touches the lab `make local` runs nor another copy. On the way out it stops the services and
removes what it created. A removal that fails (PostgreSQL or Kafka restarted under it by a
chaos test, say) is logged with what was left behind and does not stop the other removals.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from perflab.common.kafka_admin import create_topics
from perflab.common.migrate import upgrade
from perflab.dev.infra import admin_connection, delete_topics, forget_redis_prefix, unique
from perflab.dev.processes import SERVICES, Infra, Ports, ServiceProcesses, StackConfig

log = logging.getLogger(__name__)

PARTITIONS = 3


@contextlib.contextmanager
def isolated_stack(
    log_dir: Path,
    *,
    name: str = "iso",
    infra: Infra | None = None,
    services: Collection[str] = SERVICES,
    products: int = 10_000,
    trace_sample: str | None = None,
    extra_env: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[ServiceProcesses]:
    """Starts `services` (in their start order) on an isolated copy named `name`_<random>;
    yields their processes; removes the copy afterwards, even after an error.

    Topics are created only when the worker runs (the orders relay retries quietly without
    them). `trace_sample` overrides the share of traces kept (StackConfig's default)."""
    infra = infra or Infra()
    tag = unique(f"{name}_")
    needs_kafka = "worker" in services
    with contextlib.ExitStack() as cleanup:
        databases = {}
        for service in ("orders", "payments"):
            database = databases[service] = f"{tag}_{service}"
            _sql(infra, f'CREATE DATABASE "{database}"')
            cleanup.callback(
                _logged,
                f"drop database {database}",
                _sql,
                infra,
                f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
            )
            _in_thread(upgrade, f"perflab.{service}:migrations", infra.database_url(database))
        topic_prefix = f"{tag}."
        if needs_kafka:
            cleanup.callback(
                _logged,
                f"delete the topics {topic_prefix}*",
                _in_thread,
                lambda: asyncio.run(delete_topics(infra, topic_prefix)),
            )
            _in_thread(
                lambda: asyncio.run(create_topics(infra.kafka_bootstrap, topic_prefix, PARTITIONS))
            )
        redis_prefix = f"{tag}:"
        cleanup.callback(
            _logged,
            f"delete the Redis keys {redis_prefix}*",
            forget_redis_prefix,
            infra,
            redis_prefix,
        )
        config = StackConfig(
            infra=infra,
            ports=Ports.free(),
            orders_db=databases["orders"],
            payments_db=databases["payments"],
            topic_prefix=topic_prefix,
            redis_prefix=redis_prefix,
            consumer_group=f"{tag}-worker",
            extra_env={s: dict(v) for s, v in (extra_env or {}).items()},
        )
        if trace_sample is not None:
            config.trace_sample = trace_sample
        stack = ServiceProcesses(config, log_dir)
        stack.run_module("perflab.orders.seed", "orders", "--products", str(products), quiet=True)
        cleanup.callback(_logged, "stop the services", stack.stop_all)
        for service in SERVICES:
            if service in services:
                stack.start(service)
                stack.wait_ready(service)
        yield stack


def _logged(what: str, step: Callable[..., object], *args: Any) -> None:
    """One cleanup step: a failure is logged, with what it left behind, and not raised."""
    try:
        step(*args)
    except Exception:
        log.warning("isolated stack: could not %s; remove it by hand", what, exc_info=True)


def _sql(infra: Infra, statement: str) -> None:
    """One statement on the server's `postgres` database, through a connection of its own
    (PostgreSQL may have been restarted since the last one)."""

    async def run() -> None:
        admin = await admin_connection(infra)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()

    _in_thread(lambda: asyncio.run(run()))


def _in_thread(function: Callable[..., object], *args: Any) -> None:
    """Runs `function` in a thread of its own, so that its event loop (asyncio.run, Alembic's
    async engine) neither needs nor disturbs one the caller may be running (pytest-asyncio's)."""
    with ThreadPoolExecutor(1, thread_name_prefix="isolated-stack") as pool:
        pool.submit(function, *args).result()
