"""The order-events consumer: at-least-once delivery made exactly-once in effect by idempotent
processing.

- Offsets are committed by hand (`enable_auto_commit=False`): the offset of the *next* message,
  only after the message was handled, at most about once per `commit_interval`, and always on
  shutdown and when partitions are revoked in a rebalance.
- Partitions are processed concurrently, messages within a partition in order.
- Transient failures are retried with jittered exponential backoff; a message that still fails
  is not skipped: its partition is rewound to it and paused for a while, so nothing is lost.
- Permanent failures go to the dead-letter topic with the reason in the headers. Many in a row
  mean a bug or a bad deployment rather than bad data, so the worker stops instead of
  draining the whole topic into the dead-letter queue.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from opentelemetry import propagate, trace
from prometheus_client import Counter, Gauge, Histogram

from perflab.common.metrics import PUBLISHED, observe
from perflab.worker.payment_flow import (
    CircuitOpen,
    PaymentFlow,
    PermanentError,
    TransientError,
    parse_event,
)

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

CONSUMED = Counter(
    "messaging_client_consumed_messages_total", "Messages received from Kafka.", ["topic"]
)
PROCESS_DURATION = Histogram(
    "messaging_process_duration_seconds",
    "Time to handle one message, retries included.",
    ["topic", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter("worker_retries_total", "Transient failures retried.", ["topic"])
DEAD_LETTERED = Counter(
    "messages_dead_lettered_total", "Messages sent to the dead-letter topic.", ["topic"]
)
LAG = Gauge(
    "kafka_consumer_lag", "Messages behind the partition's high watermark.", ["topic", "partition"]
)
COMMITS = Counter("kafka_consumer_commits_total", "Offset commits.", ["result"])


class DeadLetterStorm(Exception):
    """Too many consecutive dead-lettered messages: stop rather than empty the topic."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_seconds: float
    backoff_max_seconds: float
    pause_seconds: float

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff (AWS architecture blog) for attempt 1, 2, ..."""
        return random.uniform(0, min(self.backoff_max_seconds, self.backoff_seconds * 2**attempt))


class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, consumer: "OrderEventsConsumer"):
        self._owner = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._owner.commit_on_revoke(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)}
        )


class OrderEventsConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        dead_letters: AIOKafkaProducer,
        flow: PaymentFlow,
        topic: str,
        dead_letter_topic: str,
        retry: RetryPolicy,
        commit_interval: float,
        dead_letter_max_consecutive: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._consumer = consumer
        self._dead_letters = dead_letters
        self._flow = flow
        self._topic = topic
        self._dlq_topic = dead_letter_topic
        self._retry = retry
        self._commit_interval = commit_interval
        self._dlq_max = dead_letter_max_consecutive
        self._clock = clock
        self._pending: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._last_commit = clock()
        self._consecutive_dead_letters = 0
        self._batch_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._paused_until: dict[TopicPartition, float] = {}
        self.running = False
        # Create the labelled series now, so rate() and increase() see their first events.
        for counter in (CONSUMED, RETRIES, DEAD_LETTERED):
            counter.labels(topic)
        PUBLISHED.labels(dead_letter_topic)
        for result in ("ok", "failed"):
            COMMITS.labels(result)

    def stop(self) -> None:
        """Finish the messages in hand, commit, and return from `run`."""
        self._stopping.set()

    async def run(self) -> None:
        self._consumer.subscribe([self._topic], listener=_CommitOnRevoke(self))
        self.running = True
        try:
            while not self._stopping.is_set():
                self._resume_due_partitions()
                batches = await self._consumer.getmany(timeout_ms=500)
                async with self._batch_lock:
                    await asyncio.gather(
                        *(self._process_partition(tp, msgs) for tp, msgs in batches.items())
                    )
                await self._update_lag()
                if self._clock() - self._last_commit >= self._commit_interval:
                    await self.commit()
        finally:
            self.running = False
            await self.commit()

    async def _process_partition(self, tp: TopicPartition, messages: list[ConsumerRecord]) -> None:
        for message in messages:
            if self._stopping.is_set():
                return  # the rest is redelivered to whoever owns the partition next
            CONSUMED.labels(tp.topic).inc()
            if not await self._handle(message):
                # Retries exhausted: rewind to this message and rest the partition.
                self._consumer.seek(tp, message.offset)
                self._consumer.pause(tp)
                self._paused_until[tp] = self._clock() + self._retry.pause_seconds
                return
            self._pending[tp] = message.offset + 1

    def _resume_due_partitions(self) -> None:
        now = self._clock()
        due = [tp for tp, until in self._paused_until.items() if until <= now]
        for tp in due:
            del self._paused_until[tp]
            if tp in self._consumer.assignment():
                self._consumer.resume(tp)

    async def _handle(self, message: ConsumerRecord) -> bool:
        """True when the message is done with (processed or dead-lettered)."""
        headers = {k: v.decode(errors="replace") for k, v in (message.headers or ())}
        started = time.perf_counter()
        outcome = "processed"
        with tracer.start_as_current_span(
            f"{message.topic} process",
            context=propagate.extract(headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": message.topic,
                "messaging.kafka.destination.partition": message.partition,
                "messaging.kafka.message.offset": message.offset,
            },
        ) as span:
            try:
                event = parse_event(message.value)
                span.set_attribute("order.id", event.order_id)
                for attempt in range(1, self._retry.max_attempts + 1):
                    try:
                        await self._flow.process(event)
                        break
                    except TransientError as exc:
                        span.add_event("retry", {"attempt": attempt, "error": str(exc)})
                        last = attempt == self._retry.max_attempts or isinstance(exc, CircuitOpen)
                        if last or self._stopping.is_set():
                            outcome = "retry_later"
                            log.warning(
                                "transient failure persists; pausing partition",
                                extra={"order_id": event.order_id, "error": str(exc)},
                            )
                            return False
                        RETRIES.labels(message.topic).inc()
                        await asyncio.sleep(self._retry.delay(attempt))
                self._consecutive_dead_letters = 0
                return True
            except PermanentError as exc:
                outcome = "dead_lettered"
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                await self._dead_letter(message, str(exc))
                return True
            finally:
                observe(
                    PROCESS_DURATION,
                    time.perf_counter() - started,
                    topic=message.topic,
                    outcome=outcome,
                )

    async def _dead_letter(self, message: ConsumerRecord, reason: str) -> None:
        self._consecutive_dead_letters += 1
        if self._consecutive_dead_letters > self._dlq_max:
            raise DeadLetterStorm(
                f"{self._consecutive_dead_letters} messages in a row could not be processed; "
                "stopping instead of dead-lettering the whole topic"
            )
        headers = [
            *(message.headers or ()),
            ("dlq.reason", reason.encode()),
            ("dlq.original.topic", message.topic.encode()),
            ("dlq.original.partition", str(message.partition).encode()),
            ("dlq.original.offset", str(message.offset).encode()),
        ]
        await self._dead_letters.send_and_wait(
            self._dlq_topic, value=message.value, key=message.key, headers=headers
        )
        DEAD_LETTERED.labels(message.topic).inc()
        PUBLISHED.labels(self._dlq_topic).inc()
        log.error(
            "message dead-lettered",
            extra={"reason": reason, "partition": message.partition, "offset": message.offset},
        )

    async def commit(self, partitions: list[TopicPartition] | None = None) -> None:
        offsets = {
            tp: offset
            for tp, offset in self._pending.items()
            if partitions is None or tp in partitions
        }
        self._last_commit = self._clock()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # Not fatal: the messages are redelivered and processing is idempotent.
            COMMITS.labels("failed").inc()
            log.warning("offset commit failed", extra={"error": repr(exc)})
            return
        COMMITS.labels("ok").inc()
        for tp, offset in offsets.items():
            if self._pending.get(tp) == offset:
                del self._pending[tp]

    async def commit_on_revoke(self, revoked: list[TopicPartition]) -> None:
        async with self._batch_lock:  # let the batch in hand finish first
            await self.commit(list(revoked))
            for tp in revoked:
                self._pending.pop(tp, None)
                self._paused_until.pop(tp, None)
                with contextlib.suppress(KeyError):
                    LAG.remove(tp.topic, str(tp.partition))

    async def _update_lag(self) -> None:
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            position = await self._consumer.position(tp)
            LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))
