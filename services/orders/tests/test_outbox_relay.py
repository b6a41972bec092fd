"""The outbox relay's wake-up: an order that commits while a batch is being published has missed
that batch, and its notify() must start the next one at once, not after a poll interval.

The batch itself is a stand-in here (the relay's SQL and Kafka are tested against the real
ones in test_repository_integration.py); what is under test is the relay's loop.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any

from perflab.orders.outbox import OutboxRelay

POLL = 60.0  # seconds: far longer than the test waits, so only a wake-up can start a batch
WAIT = 10.0  # seconds: a bound on a hang, not a timing assertion


class Producer:
    """Never asked to send: the batches below publish nothing."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def send(self, topic: str, value: bytes, key: bytes) -> Awaitable["asyncio.Future[Any]"]:
        raise AssertionError("no batch here publishes anything")


class Relay(OutboxRelay):
    """Its batches publish nothing; during the batches numbered in `orders_during` an order
    commits (notify()). `batch[n]` is set when batch n starts."""

    def __init__(self, orders_during: set[int]) -> None:
        super().__init__(
            sessions=None,  # type: ignore[arg-type]
            producer_factory=Producer,
            batch_size=10,
            poll_interval=POLL,
        )
        self.orders_during = orders_during
        self.batches = 0
        self.batch = {n: asyncio.Event() for n in (1, 2, 3)}

    async def publish_batch(self) -> int:
        self.batches += 1
        if self.batches in self.batch:
            self.batch[self.batches].set()
        await asyncio.sleep(0)
        if self.batches in self.orders_during:
            self.notify()
        return 0


async def run_until(relay: Relay, batch: int) -> None:
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(relay.batch[batch].wait(), WAIT)
    finally:
        await relay.stop()
        await asyncio.wait_for(task, WAIT)


async def test_an_order_committed_during_a_batch_starts_the_next_batch_at_once() -> None:
    relay = Relay(orders_during={1})
    await run_until(relay, 2)  # with the notify lost, batch 2 waited for the poll: TimeoutError
    assert relay.batches == 2


async def test_a_relay_without_new_orders_sleeps_until_one_commits() -> None:
    relay = Relay(orders_during=set())
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(relay.batch[1].wait(), WAIT)
        for _ in range(100):
            await asyncio.sleep(0)
        assert relay.batches == 1  # asleep, not polling in a loop
        relay.notify()
        await asyncio.wait_for(relay.batch[2].wait(), WAIT)
    finally:
        await relay.stop()
        await asyncio.wait_for(task, WAIT)
    assert relay.batches == 2
