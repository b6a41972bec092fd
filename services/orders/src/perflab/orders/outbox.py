"""The outbox relay: publishes committed outbox rows to Kafka, then deletes them.

Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several replicas share the work without
publishing a row twice at once. Delivery is at-least-once (a crash between Kafka's ack and the
delete republishes the batch); the worker's processing is idempotent, which makes that safe.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka.errors import KafkaError
from opentelemetry import propagate, trace
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from perflab.common.metrics import PUBLISHED
from perflab.orders.models import OutboxEvent

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

OUTBOX_BACKLOG = Gauge("outbox_backlog_events", "Outbox rows not yet published to Kafka.")
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox events published to Kafka.")
OUTBOX_ERRORS = Counter("outbox_publish_errors_total", "Relay batches that failed and rolled back.")
OUTBOX_DELAY = Histogram(
    "outbox_publish_delay_seconds",
    "Time from the order transaction's commit to Kafka's acknowledgement.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class Producer(Protocol):
    """What the relay needs of a Kafka producer: AIOKafkaProducer, or PoisoningProducer
    around it (faults.py). `send` returns the acknowledgement's future once the event is
    queued."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def send(self, topic: str, value: bytes, key: bytes) -> Awaitable["asyncio.Future[Any]"]: ...


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer_factory: Callable[[], Producer],
        batch_size: int,
        poll_interval: float,
    ):
        self._sessions = sessions
        self._producer_factory = producer_factory
        self._producer: Producer | None = None
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._next_count = 0.0

    def notify(self) -> None:
        """Called after an order commits, so the event goes out without waiting a poll."""
        self._wakeup.set()

    async def run(self) -> None:
        backoff = self._poll_interval
        while not self._stopping.is_set():
            # Cleared before the batch, not when the sleep starts: an order that commits while
            # this batch is claimed and published has missed it, and its notify() must cut the
            # sleep after it short (cleared at the sleep, that event waited a whole poll).
            self._wakeup.clear()
            try:
                if self._producer is None:
                    producer = self._producer_factory()
                    try:
                        await producer.start()
                    except BaseException:
                        await producer.stop()
                        raise
                    self._producer = producer
                published = await self.publish_batch()
                backoff = self._poll_interval
                if published == self._batch_size:
                    continue  # more waiting: no sleep
            except (KafkaError, OSError) as exc:
                OUTBOX_ERRORS.inc()
                log.warning("outbox relay cannot publish; will retry", extra={"error": repr(exc)})
                backoff = min(backoff * 2, 5.0)
            except Exception:
                OUTBOX_ERRORS.inc()
                log.exception("outbox relay batch failed; will retry")
                backoff = min(backoff * 2, 5.0)
            await self._sleep(backoff)

    async def _sleep(self, seconds: float) -> None:
        waiters = [asyncio.create_task(e.wait()) for e in (self._wakeup, self._stopping)]
        _, pending = await asyncio.wait(
            waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()

    async def publish_batch(self) -> int:
        """Claims and deletes up to a batch of rows in one statement, publishes them, then
        commits: a failed publish rolls the transaction back and the rows are there again."""
        assert self._producer is not None
        async with self._sessions() as session, session.begin():
            conn = await session.connection()
            rows = sorted(
                (await conn.execute(_CLAIM_BATCH, {"batch": self._batch_size})).all(),
                key=lambda r: r.id,
            )
            if rows:
                acks = []
                for row in rows:
                    # Continue the trace of the request that created the order.
                    ctx = propagate.extract(row.headers)
                    with tracer.start_as_current_span(
                        f"{row.topic} publish", context=ctx, kind=trace.SpanKind.PRODUCER
                    ):
                        acks.append(
                            await self._producer.send(
                                row.topic, value=row.payload, key=row.key.encode()
                            )
                        )
                await asyncio.gather(*acks)
                now = time.time()
                for row in rows:
                    OUTBOX_DELAY.observe(max(0.0, now - row.created_at.timestamp()))
                OUTBOX_PUBLISHED.inc(len(rows))
                for row in rows:
                    PUBLISHED.labels(row.topic).inc()
            if time.monotonic() >= self._next_count:
                # At most once a second: a count per batch was a third of the relay's
                # statements under load.
                OUTBOX_BACKLOG.set(await conn.scalar(_COUNT) or 0)
                self._next_count = time.monotonic() + 1.0
        return len(rows)

    async def stop(self) -> None:
        self._stopping.set()
        if self._producer is not None:
            await self._producer.stop()


_OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]
# The oldest rows no other relay holds, deleted and returned in one statement (compiled once).
_CLAIM_BATCH = (
    delete(_OUTBOX)
    .where(
        _OUTBOX.c.id.in_(
            select(_OUTBOX.c.id)
            .order_by(_OUTBOX.c.id)
            .limit(bindparam("batch"))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .returning(*_OUTBOX.c)
)
_COUNT = select(func.count()).select_from(_OUTBOX)
