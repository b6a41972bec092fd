"""The orders faults: poison_rate on the outbox relay's producer (what goes to Kafka, in which
order, and that the relay's acknowledgement covers the poison too), and db_slow_ms in the
repository (its pg_sleep runs on the operation's own connection, before its statements)."""

import asyncio
from typing import Any

import pytest

from perflab.common.faults import FaultFlags, FaultSettings
from perflab.orders.faults import POISON, PoisoningProducer
from perflab.orders.repository import Limits, NotFound, Repository


class FakeProducer:
    """Queues sends; the test acknowledges them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.acks: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.sent.append((topic, value, key))
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


def producer(rate: float) -> tuple[PoisoningProducer, FakeProducer]:
    faults = FaultFlags(FaultSettings())
    faults.set_local("poison_rate", rate)
    inner = FakeProducer()
    return PoisoningProducer(inner, faults), inner  # type: ignore[arg-type]


async def test_with_the_fault_each_event_is_followed_by_poison_acknowledged_with_it() -> None:
    outer, inner = producer(1)
    ack = await outer.send("t", value=b"event", key=b"k")
    assert inner.sent == [("t", b"event", b"k"), ("t", POISON, b"poison")]
    inner.acks[0].set_result("event acked")
    await asyncio.sleep(0)
    assert not ack.done()  # the relay deletes the row only once the poison is acked too
    inner.acks[1].set_result("poison acked")
    assert await ack == ["event acked", "poison acked"]


async def test_without_the_fault_the_event_goes_alone() -> None:
    outer, inner = producer(0)
    ack = await outer.send("t", value=b"event", key=b"k")
    assert inner.sent == [("t", b"event", b"k")]
    assert ack is inner.acks[0]


class FakeSession:
    """Records the statements an operation runs, in order, and when its session closes."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def __aenter__(self) -> "FakeSession":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.log.append("close")

    async def execute(self, statement: Any, params: Any = None) -> None:
        self.log.append(str(statement))

    async def get(self, entity: Any, ident: Any) -> None:
        self.log.append(f"get {entity.__name__} {ident}")

    async def scalar(self, statement: Any) -> None:
        self.log.append("idempotency look-up")


def repository(slow_ms: float) -> tuple[Repository, list[str]]:
    faults = FaultFlags(FaultSettings())
    faults.set_local("db_slow_ms", slow_ms)
    log: list[str] = []
    limits = Limits(max_items=3, max_quantity=10, max_page_size=100)
    repo = Repository(lambda: FakeSession(log), "t", limits, faults)  # type: ignore[arg-type]
    return repo, log


async def test_db_slow_ms_sleeps_on_the_reads_connection_before_its_statements() -> None:
    repo, log = repository(20)
    with pytest.raises(NotFound):
        await repo.get_product(7)
    assert log == ["SELECT pg_sleep(:s)", "get Product 7", "close"]


async def test_without_db_slow_ms_a_read_runs_only_its_own_statements() -> None:
    repo, log = repository(0)
    with pytest.raises(NotFound):
        await repo.get_product(7)
    assert log == ["get Product 7", "close"]


async def test_db_slow_ms_leaves_the_idempotency_look_up_alone() -> None:
    repo, log = repository(20)
    assert await repo._by_idempotency_key("k") is None
    assert log == ["idempotency look-up", "close"]
