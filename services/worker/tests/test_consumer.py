"""Unit tests of the consumer's commit, retry and dead-letter rules, with fake Kafka clients."""

import asyncio
from collections import deque
from typing import Any

import grpc
import pytest
from aiokafka import ConsumerRecord, TopicPartition

from perflab.contracts.events.v1 import events_pb2
from perflab.worker.consumer import (
    DeadLetterStorm,
    OffsetTracker,
    OrderEventsConsumer,
    RetryPolicy,
    wait_for_topic,
)
from perflab.worker.payment_flow import (
    CircuitOpen,
    PermanentError,
    TransientError,
    classify,
    parse_event,
)

TOPIC = "orders.created"
TP = TopicPartition(TOPIC, 0)


def record(offset: int, value: bytes, key: bytes = b"k") -> ConsumerRecord:  # type: ignore[type-arg]
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, key, value, None, len(value), 1, [])


def keyed(offset: int, order_id: str) -> ConsumerRecord:  # type: ignore[type-arg]
    """An event keyed by its order id, as the outbox publishes them."""
    return record(offset, event(order_id), order_id.encode())


def event(order_id: str) -> bytes:
    return events_pb2.OrderCreated(
        order_id=order_id, customer_id="c", total_cents=5
    ).SerializeToString()


class FakeConsumer:
    def __init__(self, batches: list[list[ConsumerRecord]], owner: list[Any]):  # type: ignore[type-arg]
        self.batches = deque(batches)
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[int] = []
        self.paused: set[TopicPartition] = set()
        self.owner = owner

    def subscribe(self, topics: list[str], listener: Any) -> None:
        pass

    async def getmany(  # type: ignore[type-arg]
        self, timeout_ms: int, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        await asyncio.sleep(0)  # as a real poll, let the messages in hand run
        if not self.batches:
            if self.owner[0].in_flight:
                await asyncio.sleep(0.001)  # a poll that found nothing new
            else:
                self.owner[0].stop()  # nothing left: end the run
            return {}
        return {TP: self.batches.popleft()}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append(offset)

    def pause(self, tp: TopicPartition) -> None:
        self.paused.add(tp)

    def resume(self, tp: TopicPartition) -> None:
        self.paused.discard(tp)

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int:
        return 10

    async def position(self, tp: TopicPartition) -> int:
        return 3


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_and_wait(self, topic: str, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, **kwargs})


class ScriptedFlow:
    """Fails each order id with the listed errors first, then succeeds."""

    def __init__(self, script: dict[str, list[Exception]]):
        self.script = {k: deque(v) for k, v in script.items()}
        self.calls: list[str] = []

    async def process(self, ev: events_pb2.OrderCreated) -> None:
        self.calls.append(ev.order_id)
        pending = self.script.get(ev.order_id)
        if pending:
            raise pending.popleft()


def make(batches: list[list[ConsumerRecord]], flow: ScriptedFlow, **kw: Any):  # type: ignore[no-untyped-def,type-arg]
    owner: list[Any] = []
    consumer = FakeConsumer(batches, owner)
    producer = FakeProducer()
    worker = OrderEventsConsumer(
        consumer,  # type: ignore[arg-type]
        producer,  # type: ignore[arg-type]
        flow,  # type: ignore[arg-type]
        topic=TOPIC,
        dead_letter_topic=TOPIC + ".dlq",
        retry=RetryPolicy(kw.get("attempts", 3), 0.001, 0.002, 60),
        commit_interval=0,
        dead_letter_max_consecutive=kw.get("dlq_max", 5),
        max_in_flight=kw.get("max_in_flight", 64),
    )
    owner.append(worker)
    return worker, consumer, producer


async def test_commits_the_offset_after_the_last_processed_message() -> None:
    flow = ScriptedFlow({})
    worker, consumer, _ = make([[record(0, event("a")), record(1, event("b"))]], flow)
    await worker.run()
    assert flow.calls == ["a", "b"]
    assert consumer.commits[-1] == {TP: 2}


async def test_transient_errors_are_retried_then_succeed() -> None:
    flow = ScriptedFlow({"a": [TransientError("down"), TransientError("down")]})
    worker, consumer, producer = make([[record(0, event("a"))]], flow)
    await worker.run()
    assert flow.calls == ["a", "a", "a"]
    assert consumer.commits[-1] == {TP: 1}
    assert producer.sent == []


async def test_exhausted_retries_rewind_and_pause_without_committing() -> None:
    flow = ScriptedFlow({"b": [TransientError("down")] * 3})
    worker, consumer, producer = make(
        [[record(0, event("a")), record(1, event("b")), record(2, event("c"))]], flow
    )
    await worker.run()
    assert flow.calls == ["a", "b", "b", "b"]  # c is not touched while b is unresolved
    assert consumer.seeks == [1]
    assert TP in consumer.paused
    assert consumer.commits[-1] == {TP: 1}  # b will be redelivered
    assert producer.sent == []  # transient failures never reach the dead-letter topic


async def test_permanent_errors_go_to_the_dead_letter_topic_with_the_reason() -> None:
    flow = ScriptedFlow({"a": [PermanentError("payments.Charge failed with INVALID_ARGUMENT")]})
    worker, consumer, producer = make(
        [[record(0, b"\xff\xffgarbage"), record(1, event("a"))]], flow
    )
    await worker.run()
    assert [m["topic"] for m in producer.sent] == [TOPIC + ".dlq"] * 2
    reasons = [dict(m["headers"])["dlq.reason"].decode() for m in producer.sent]
    assert "not an OrderCreated" in reasons[0] or "without order_id" in reasons[0]
    assert "INVALID_ARGUMENT" in reasons[1]
    assert dict(producer.sent[1]["headers"])["dlq.original.offset"] == b"1"
    assert consumer.commits[-1] == {TP: 2}


async def test_a_storm_of_dead_letters_stops_the_worker() -> None:
    batch = [record(i, b"") for i in range(10)]
    worker, consumer, producer = make([batch], ScriptedFlow({}), dlq_max=3)
    with pytest.raises(DeadLetterStorm):
        await worker.run()
    assert len(producer.sent) == 3
    assert consumer.commits[-1] == {TP: 3}  # what was dead-lettered is committed, no more


async def test_stop_finishes_the_message_in_hand_and_commits() -> None:
    class SlowFlow(ScriptedFlow):
        async def process(self, ev: events_pb2.OrderCreated) -> None:
            await super().process(ev)
            worker.stop()  # SIGTERM arrives while the first message is processed
            await asyncio.sleep(0.01)

    flow = SlowFlow({})
    worker, consumer, _ = make([[record(0, event("a")), record(1, event("b"))]], flow)
    await worker.run()
    assert flow.calls == ["a"]
    assert consumer.commits[-1] == {TP: 1}


def test_parse_event_rejects_garbage_and_incomplete_events() -> None:
    with pytest.raises(PermanentError):
        parse_event(b"")
    with pytest.raises(PermanentError):
        parse_event(events_pb2.OrderCreated(order_id="x").SerializeToString())
    assert parse_event(event("ok")).order_id == "ok"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, PermanentError),
        (grpc.StatusCode.NOT_FOUND, PermanentError),
        (grpc.StatusCode.UNAVAILABLE, TransientError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, TransientError),
        (grpc.StatusCode.ABORTED, TransientError),
    ],
)
def test_grpc_codes_are_split_into_permanent_and_transient(
    code: grpc.StatusCode, kind: type[Exception]
) -> None:
    error = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x")
    assert isinstance(classify(error, "payments.Charge"), kind)


def test_backoff_is_bounded() -> None:
    policy = RetryPolicy(5, 0.1, 1.0, 5)
    assert all(0 <= policy.delay(a) <= 1.0 for a in range(1, 20) for _ in range(20))


async def test_an_open_circuit_rests_the_partition_without_burning_retries() -> None:
    flow = ScriptedFlow({"a": [CircuitOpen("open")]})
    worker, consumer, producer = make([[record(0, event("a"))]], flow, attempts=5)
    await worker.run()
    assert flow.calls == ["a"]  # no retries against an open circuit
    assert consumer.seeks == [0] and TP in consumer.paused
    assert producer.sent == []


# --- Concurrency within a partition -------------------------------------------------------


def test_the_committable_offset_never_passes_an_unfinished_one() -> None:
    tracker = OffsetTracker()
    assert tracker.committable() is None
    for offset in (5, 6, 7, 8):
        tracker.start(offset)
    tracker.done(7)
    tracker.done(6)
    assert tracker.committable() == 5  # 6 and 7 are done, 5 is not
    tracker.done(5)
    assert tracker.committable() == 8
    tracker.done(8)
    assert tracker.committable() == 9
    assert len(tracker) == 0


def test_a_rewound_tracker_commits_the_rewind_point_until_new_work_is_done() -> None:
    tracker = OffsetTracker(next_offset=3)
    assert tracker.committable() == 3
    tracker.start(3)
    tracker.start(4)
    tracker.done(4)
    assert tracker.committable() == 3
    tracker.done(3)
    assert tracker.committable() == 5


class GatedFlow(ScriptedFlow):
    """Holds each listed order until the orders it waits for are processed, and records the
    commits the worker makes meanwhile."""

    def __init__(self, waits: dict[str, set[str]]):
        super().__init__({})
        self.waits = waits
        self.finished: list[str] = []
        self.changed = asyncio.Event()
        self.commits_while_waiting: list[dict[TopicPartition, int]] = []
        self.worker: OrderEventsConsumer | None = None

    async def process(self, ev: events_pb2.OrderCreated) -> None:
        async with asyncio.timeout(5):  # without concurrency this would never be released
            while not self.waits.get(ev.order_id, set()) <= set(self.finished):
                self.changed.clear()
                await self.changed.wait()
        if ev.order_id in self.waits and self.worker is not None:
            await self.worker.commit()  # a periodic commit while this one is unfinished
        try:
            await super().process(ev)
        finally:
            self.finished.append(ev.order_id)
            self.changed.set()


async def test_different_orders_of_one_partition_are_processed_concurrently() -> None:
    flow = GatedFlow({"a": {"b", "c"}})  # a finishes only after b and c, which come later
    worker, consumer, _ = make([[keyed(0, "a"), keyed(1, "b"), keyed(2, "c")]], flow)
    flow.worker = worker
    await worker.run()
    assert flow.finished == ["b", "c", "a"]
    # b and c were done while a was not: no commit went past a.
    assert all(c[TP] == 0 for c in consumer.commits[:-1])
    assert consumer.commits[-1] == {TP: 3}


async def test_messages_of_one_order_are_processed_in_offset_order() -> None:
    log: list[str] = []

    class Timed(ScriptedFlow):
        async def process(self, ev: events_pb2.OrderCreated) -> None:
            log.append(f"start {ev.order_id}")
            await asyncio.sleep(0.01)
            log.append(f"end {ev.order_id}")

    # x1 and x2 belong to order x (same key), z to another order.
    messages = [record(0, event("x1"), b"x"), record(1, event("x2"), b"x"), keyed(2, "z")]
    worker, consumer, _ = make([messages], Timed({}))
    await worker.run()
    assert log.index("start x2") > log.index("end x1")  # x2 waited for x1
    assert log.index("start z") < log.index("end x1")  # z did not wait for order x
    assert consumer.commits[-1] == {TP: 3}


async def test_a_failed_message_rewinds_its_partition_below_later_finished_ones() -> None:
    flow = ScriptedFlow({"b": [TransientError("down")] * 3})
    worker, consumer, producer = make(
        [[keyed(0, "a"), keyed(1, "b"), keyed(2, "c"), record(3, event("b2"), b"b")]], flow
    )
    await worker.run()
    assert sorted(flow.calls) == ["a", "b", "b", "b", "c"]  # c (another order) went on
    assert "b2" not in flow.calls  # b's next message waits for b
    assert consumer.seeks == [1] and TP in consumer.paused
    assert consumer.commits[-1] == {TP: 1}  # c is redelivered; it changes nothing the 2nd time
    assert producer.sent == []


async def test_revocation_finishes_the_messages_in_hand_and_commits_them() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    class Held(ScriptedFlow):
        async def process(self, ev: events_pb2.OrderCreated) -> None:
            if ev.order_id == "slow":
                started.set()
                await release.wait()
            await super().process(ev)

    flow = Held({})
    worker, consumer, _ = make([], flow)
    worker._schedule(TP, keyed(0, "fast"))
    worker._schedule(TP, keyed(1, "slow"))
    worker._schedule(TP, record(2, event("after-slow"), b"slow"))
    await started.wait()
    revoke = asyncio.create_task(worker.commit_on_revoke([TP]))
    await asyncio.sleep(0.01)
    assert not revoke.done()  # waits for the message in hand
    release.set()
    await revoke
    assert flow.calls == ["fast", "slow"]  # nothing new started once revoked
    assert consumer.commits == [{TP: 2}]


async def test_in_flight_messages_are_bounded() -> None:
    active = 0
    most = 0

    class Counting(ScriptedFlow):
        async def process(self, ev: events_pb2.OrderCreated) -> None:
            nonlocal active, most
            active += 1
            most = max(most, active)
            await asyncio.sleep(0.005)
            active -= 1

    batch = [keyed(i, f"o{i}") for i in range(20)]

    class Limited(FakeConsumer):
        async def getmany(  # type: ignore[type-arg]
            self, timeout_ms: int, max_records: int | None = None
        ) -> dict[TopicPartition, list[ConsumerRecord]]:
            await asyncio.sleep(0)
            if not self.batches:
                if self.owner[0].in_flight:
                    await asyncio.sleep(0.001)
                else:
                    self.owner[0].stop()
                return {}
            assert max_records is not None
            taken = self.batches[0][:max_records]
            del self.batches[0][:max_records]
            if not self.batches[0]:
                self.batches.popleft()
            return {TP: taken}

    owner: list[Any] = []
    consumer = Limited([batch], owner)
    worker = OrderEventsConsumer(
        consumer,  # type: ignore[arg-type]
        FakeProducer(),  # type: ignore[arg-type]
        Counting({}),  # type: ignore[arg-type]
        topic=TOPIC,
        dead_letter_topic=TOPIC + ".dlq",
        retry=RetryPolicy(3, 0.001, 0.002, 60),
        commit_interval=0,
        dead_letter_max_consecutive=5,
        max_in_flight=4,
    )
    owner.append(worker)
    await worker.run()
    assert 1 < most <= 4
    assert consumer.commits[-1] == {TP: 20}


class GrowingMetadata:
    """Cluster metadata in which the topic appears on the third request."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.requests = 0

    async def topics(self) -> set[str]:
        self.requests += 1
        return {"other", self.topic} if self.requests >= 3 else {"other"}


async def test_the_worker_waits_for_its_topic_to_be_created() -> None:
    metadata = GrowingMetadata("orders.created")
    assert await wait_for_topic(metadata, "orders.created", lambda: False, interval=0.001)
    assert metadata.requests == 3


async def test_stopping_ends_the_wait_for_a_topic_that_never_comes() -> None:
    metadata = GrowingMetadata("never")
    metadata.requests = -(10**9)  # the topic never appears
    stop_after = iter([False, False, True])
    assert not await wait_for_topic(metadata, "never", lambda: next(stop_after), interval=0.001)
