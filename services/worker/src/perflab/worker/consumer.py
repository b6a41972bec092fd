"""The order-events consumer: at-least-once delivery made exactly-once in effect by idempotent
processing.

- Messages of different orders are processed concurrently, within a partition too (at most
  `max_in_flight` at once); messages with the same key (the order id) one after the other, in
  offset order. A partition is not a queue of one.
- Offsets are committed by hand (`enable_auto_commit=False`): per partition the lowest offset
  not yet done (`OffsetTracker`), so a commit never passes a message still in flight or
  failed, however far later messages got. At most about once per `commit_interval`, and
  always on shutdown and when partitions are revoked in a rebalance (after their messages in
  hand are finished).
- Transient failures are retried with jittered exponential backoff; a message that still fails
  is not skipped: its partition is paused, its messages in hand finish, then it is rewound to
  the lowest offset not done and rests a while, so nothing is lost. What was done above that
  offset is redelivered and changes nothing (processing is idempotent).
- Permanent failures go to the dead-letter topic with the reason in the headers. Many in a row
  mean a bug or a bad deployment rather than bad data, so the worker stops instead of
  draining the whole topic into the dead-letter queue.
"""

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from opentelemetry import propagate, trace
from prometheus_client import Counter, Gauge, Histogram

from perflab.common.metrics import PUBLISHED, observe
from perflab.contracts.events.v1 import events_pb2
from perflab.worker.payment_flow import (
    CircuitOpen,
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
IN_FLIGHT = Gauge("worker_messages_in_flight", "Messages being processed right now.")


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


class OffsetTracker:
    """The offsets of one partition handed out for processing, in the order Kafka delivered
    them (ascending), and which are done. `committable()` is the offset to commit: the lowest
    one not done, or one past the highest when all are. Out-of-order completion moves it only
    once everything below is done."""

    def __init__(self, next_offset: int | None = None):
        self._open: dict[int, bool] = {}  # offset -> done, ascending (dicts keep order)
        self._next = next_offset

    def start(self, offset: int) -> None:
        if self._open and offset <= next(reversed(self._open)):
            # Below one already handed out (the client re-fetched): keep the order ascending.
            self._open = dict(sorted({**self._open, offset: False}.items()))
        else:
            self._open[offset] = False
        self._next = max(self._next or 0, offset + 1)

    def done(self, offset: int) -> None:
        self._open[offset] = True
        while self._open:
            lowest = next(iter(self._open))
            if not self._open[lowest]:
                break
            del self._open[lowest]

    def committable(self) -> int | None:
        if self._open:
            return next(iter(self._open))
        return self._next

    def __len__(self) -> int:
        """Offsets started and not done (or not yet passed by a done lower one)."""
        return sum(1 for done in self._open.values() if not done)


class _Outcome(enum.Enum):
    DONE = "done"  # processed or dead-lettered
    FAILED = "failed"  # retries exhausted: the partition is rewound to it
    SKIPPED = "skipped"  # not started: stopping, revoked, or an earlier failure on its key


@dataclass
class _Partition:
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    chains: dict[bytes | None, "asyncio.Task[_Outcome]"] = field(default_factory=dict)
    tasks: set["asyncio.Task[_Outcome]"] = field(default_factory=set)
    failed: bool = False  # paused; rewound once its tasks are finished
    revoked: bool = False
    committed: int | None = None
    # Offsets started, ascending, with their outcome so far: True dead-lettered, False
    # processed, None in hand. The dead-letter guard counts runs in this order, not in the
    # order messages finish (a quick dead letter may finish before a slow success below it).
    outcomes: dict[int, bool | None] = field(default_factory=dict)

    def dead_letter_run(self, offset: int) -> int:
        """Marks `offset` dead-lettered; the dead letters in a row ending at it, in offset
        order (a message in hand or processed below it ends the run)."""
        self.outcomes[offset] = True
        run = 0
        for earlier in reversed([o for o in self.outcomes if o <= offset]):
            if self.outcomes[earlier] is not True:
                break
            run += 1
        return run


class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, consumer: "OrderEventsConsumer"):
        self._owner = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._owner.commit_on_revoke(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)}
        )


class Flow(Protocol):
    """What the consumer does with one event (PaymentFlow; DelayedFlow around it, faults.py).
    Raises TransientError to be retried, PermanentError to dead-letter the message."""

    def process(self, event: events_pb2.OrderCreated) -> Awaitable[object]: ...


class Metadata(Protocol):
    async def topics(self) -> set[str]: ...


async def wait_for_topic(
    consumer: Metadata, topic: str, stopping: Callable[[], bool], interval: float = 1.0
) -> bool:
    """Waits until `topic` exists; False when `stopping()` became true first.

    In the cluster the topics come from a Helm hook Job that runs after the Deployments have
    started. A consumer that subscribes to a topic that does not exist yet gets no partitions
    until its next metadata refresh (`metadata_max_age_ms`, 5 minutes), and orders created
    meanwhile wait that long. So the worker waits for the topic, and is not ready until then."""
    attempt = 0
    while not stopping():
        if topic in await consumer.topics():  # a fresh metadata request
            return True
        if attempt % 10 == 0:
            log.info("waiting for the topic to be created", extra={"topic": topic})
        attempt += 1
        await asyncio.sleep(interval)
    return False


class OrderEventsConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        dead_letters: AIOKafkaProducer,
        flow: Flow,
        topic: str,
        dead_letter_topic: str,
        retry: RetryPolicy,
        commit_interval: float,
        dead_letter_max_consecutive: int,
        max_in_flight: int = 64,
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
        self._max_in_flight = max_in_flight
        self._clock = clock
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._in_flight = 0
        self._slot_free = asyncio.Event()
        self._last_commit = clock()
        self._fatal: BaseException | None = None
        self._stopping = asyncio.Event()
        self._paused_until: dict[TopicPartition, float] = {}
        self.running = False
        # Create the labelled series now, so rate() and increase() see their first events.
        for counter in (CONSUMED, RETRIES, DEAD_LETTERED):
            counter.labels(topic)
        PUBLISHED.labels(dead_letter_topic)
        for result in ("ok", "failed"):
            COMMITS.labels(result)

    @property
    def in_flight(self) -> int:
        """Messages started and not finished."""
        return self._in_flight

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Finish the messages in hand, commit, and return from `run`."""
        self._stopping.set()
        self._slot_free.set()

    async def run(self) -> None:
        self._consumer.subscribe([self._topic], listener=_CommitOnRevoke(self))
        self.running = True
        try:
            while not self._stopping.is_set():
                self._resume_due_partitions()
                free = self._max_in_flight - self._in_flight
                if free <= 0:  # back-pressure: wait for a message to finish before fetching
                    self._slot_free.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._slot_free.wait(), 0.5)
                else:
                    batches = await self._consumer.getmany(timeout_ms=500, max_records=free)
                    for tp, messages in batches.items():
                        for message in messages:
                            self._schedule(tp, message)
                    await self._update_lag()
                if self._clock() - self._last_commit >= self._commit_interval:
                    await self.commit()
        finally:
            self.running = False
            self._stopping.set()  # unstarted messages stay for whoever owns them next
            tasks = [t for p in self._partitions.values() for t in p.tasks]
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.commit()
        if self._fatal is not None:
            raise self._fatal

    def _schedule(self, tp: TopicPartition, message: ConsumerRecord) -> None:
        """Starts a message's processing, after the previous message with the same key."""
        state = self._partitions.setdefault(tp, _Partition())
        if state.failed or state.revoked:
            return  # fetched before the pause: it is redelivered after the rewind
        CONSUMED.labels(tp.topic).inc()
        state.tracker.start(message.offset)
        state.outcomes[message.offset] = None
        while len(state.outcomes) > 4 * (self._max_in_flight + self._dlq_max):
            del state.outcomes[next(iter(state.outcomes))]  # long past: forget the oldest
        previous = state.chains.get(message.key)
        task = asyncio.create_task(self._process(tp, state, message, previous))
        state.chains[message.key] = task
        state.tasks.add(task)
        self._in_flight += 1
        IN_FLIGHT.set(self._in_flight)
        task.add_done_callback(lambda t: self._finished(tp, state, message, t))

    async def _process(
        self,
        tp: TopicPartition,
        state: _Partition,
        message: ConsumerRecord,
        previous: "asyncio.Task[_Outcome] | None",
    ) -> _Outcome:
        if previous is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(previous)
            if not previous.done() or previous.cancelled() or previous.exception() is not None:
                return _Outcome.SKIPPED
            if previous.result() is not _Outcome.DONE:
                return _Outcome.SKIPPED  # order per key: never past an unfinished message
        if self._stopping.is_set() or state.failed or state.revoked:
            return _Outcome.SKIPPED
        if not await self._handle(state, message):
            return _Outcome.FAILED
        return _Outcome.DONE

    def _finished(
        self,
        tp: TopicPartition,
        state: _Partition,
        message: ConsumerRecord,
        task: "asyncio.Task[_Outcome]",
    ) -> None:
        self._in_flight -= 1
        IN_FLIGHT.set(self._in_flight)
        self._slot_free.set()
        state.tasks.discard(task)
        if state.chains.get(message.key) is task:
            del state.chains[message.key]
        if task.cancelled():
            outcome = _Outcome.SKIPPED
        elif (exc := task.exception()) is not None:
            outcome = _Outcome.SKIPPED
            if self._fatal is None:
                self._fatal = exc  # e.g. DeadLetterStorm: `run` re-raises it after the drain
            self.stop()
        else:
            outcome = task.result()
        if outcome is _Outcome.DONE:
            state.tracker.done(message.offset)
        elif outcome is _Outcome.FAILED and not state.failed and not state.revoked:
            # Retries exhausted: no more of this partition until it is rewound to the lowest
            # offset not done, which waits for the messages in hand.
            state.failed = True
            self._consumer.pause(tp)
            self._paused_until[tp] = self._clock() + self._retry.pause_seconds
        if state.failed and not state.tasks and not state.revoked:
            rewind = state.tracker.committable()
            if rewind is not None:
                self._consumer.seek(tp, rewind)
            committed = state.committed
            self._partitions[tp] = _Partition(
                tracker=OffsetTracker(rewind), failed=True, committed=committed
            )

    def _resume_due_partitions(self) -> None:
        now = self._clock()
        for tp, until in list(self._paused_until.items()):
            state = self._partitions.get(tp)
            if until > now or (state is not None and state.tasks):
                continue  # still resting, or its messages in hand are not finished
            del self._paused_until[tp]
            if state is not None:
                state.failed = False
            if tp in self._consumer.assignment():
                self._consumer.resume(tp)

    async def _handle(self, state: _Partition, message: ConsumerRecord) -> bool:
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
                state.outcomes[message.offset] = False
                return True
            except PermanentError as exc:
                outcome = "dead_lettered"
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                await self._dead_letter(state, message, str(exc))
                return True
            finally:
                observe(
                    PROCESS_DURATION,
                    time.perf_counter() - started,
                    topic=message.topic,
                    outcome=outcome,
                )

    async def _dead_letter(self, state: _Partition, message: ConsumerRecord, reason: str) -> None:
        run = state.dead_letter_run(message.offset)
        if run > self._dlq_max:
            raise DeadLetterStorm(
                f"{run} messages in a row could not be processed; "
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
        """Commits, per partition, the lowest offset not done, when it moved since last time."""
        offsets = {}
        for tp, state in self._partitions.items():
            offset = state.tracker.committable()
            wanted = partitions is None or tp in partitions
            moved = offset is not None and (state.committed is None or offset > state.committed)
            if wanted and moved:
                offsets[tp] = offset  # type: ignore[assignment]
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
            if tp in self._partitions:
                self._partitions[tp].committed = offset

    async def commit_on_revoke(self, revoked: list[TopicPartition]) -> None:
        """Lets the revoked partitions' messages in hand finish (none new start), commits
        them, and forgets the partitions."""
        states = [self._partitions[tp] for tp in revoked if tp in self._partitions]
        for state in states:
            state.revoked = True
        await asyncio.gather(*(t for s in states for t in s.tasks), return_exceptions=True)
        await self.commit(list(revoked))
        for tp in revoked:
            self._partitions.pop(tp, None)
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
