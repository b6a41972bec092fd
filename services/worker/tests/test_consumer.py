"""Unit tests of the consumer's commit, retry and dead-letter rules, with fake Kafka clients."""

import asyncio
from collections import deque
from typing import Any

import grpc
import pytest
from aiokafka import ConsumerRecord, TopicPartition

from perflab.contracts.events.v1 import events_pb2
from perflab.worker.consumer import DeadLetterStorm, OrderEventsConsumer, RetryPolicy
from perflab.worker.payment_flow import (
    CircuitOpen,
    PermanentError,
    TransientError,
    classify,
    parse_event,
)

TOPIC = "orders.created"
TP = TopicPartition(TOPIC, 0)


def record(offset: int, value: bytes) -> ConsumerRecord:  # type: ignore[type-arg]
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, b"k", value, None, len(value), 1, [])


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

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[ConsumerRecord]]:  # type: ignore[type-arg]
        if not self.batches:
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
