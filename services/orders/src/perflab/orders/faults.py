"""The orders service's `poison_rate` fault, on the Kafka producer the outbox relay publishes
through, so the relay reads as the outbox. (Its other fault, `db_slow_ms`, must act on the
database connection an operation holds: it stays in the repository, behind one hook.)

As when the relay drew it itself: after a row's event is handed to the producer, one draw
decides whether an undecodable event follows it on the same topic, in the same batch, under
the row's `publish` span; the batch is deleted from the outbox only once both are acknowledged.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any

from aiokafka import AIOKafkaProducer

from perflab.common.faults import FaultFlags

POISON = b"\xffinjected poison"


class PoisoningProducer:
    """An AIOKafkaProducer that, with the `poison_rate` fault on, follows events with poison."""

    def __init__(self, producer: AIOKafkaProducer, faults: FaultFlags):
        self._producer = producer
        self._faults = faults

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    def send(self, topic: str, value: bytes, key: bytes) -> Awaitable["asyncio.Future[Any]"]:
        # Not a coroutine itself: with the fault off, the producer's own send is handed back,
        # so the wrapper costs no extra await per event.
        if not self._faults.value("poison_rate"):
            return self._producer.send(topic, value=value, key=key)  # type: ignore[no-any-return]
        return self._send_then_maybe_poison(topic, value, key)

    async def _send_then_maybe_poison(
        self, topic: str, value: bytes, key: bytes
    ) -> "asyncio.Future[Any]":
        ack = await self._producer.send(topic, value=value, key=key)
        if not self._faults.chance("poison_rate"):
            return ack  # type: ignore[no-any-return]
        # An extra, undecodable event: the real one still goes out.
        poison = await self._producer.send(topic, value=POISON, key=b"poison")
        return asyncio.gather(ack, poison)
