"""The worker's fault, `worker_delay_ms`, around the payment flow instead of inside it, so
PaymentFlow reads as the payments domain.

The consumer calls `process` once per attempt, inside the message's span and its processing
time, holding the message's in-flight slot (and the key's turn) while it waits: as the delay
did at the top of PaymentFlow.process, before the breaker and the charge.
"""

import asyncio
from collections.abc import Awaitable, Callable

from perflab.common.faults import FaultFlags
from perflab.contracts.events.v1 import events_pb2
from perflab.contracts.payments.v1 import payments_pb2
from perflab.worker.payment_flow import PaymentFlow


class DelayedFlow:
    def __init__(
        self,
        flow: PaymentFlow,
        faults: FaultFlags,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self._flow = flow
        self._faults = faults
        self._sleep = sleep

    def process(self, event: events_pb2.OrderCreated) -> Awaitable[payments_pb2.Payment]:
        # Not a coroutine itself: with the fault off, the flow's own coroutine is handed back,
        # so the wrapper costs no extra await per message.
        delay_ms = self._faults.value("worker_delay_ms")
        if delay_ms:
            return self._after(delay_ms / 1000, event)
        return self._flow.process(event)

    async def _after(self, seconds: float, event: events_pb2.OrderCreated) -> payments_pb2.Payment:
        await self._sleep(seconds)
        return await self._flow.process(event)
