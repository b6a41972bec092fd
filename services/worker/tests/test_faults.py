"""The worker_delay_ms fault around the payment flow: a wait before each attempt, nothing
added when it is off."""

from typing import Any

from perflab.common.faults import FaultFlags, FaultSettings
from perflab.contracts.events.v1 import events_pb2
from perflab.worker.faults import DelayedFlow

EVENT = events_pb2.OrderCreated(order_id="o1", total_cents=500, currency="EUR")


class Recorder:
    """The flow and the sleep, writing to one log so their order shows."""

    def __init__(self) -> None:
        self.log: list[Any] = []

    async def process(self, event: events_pb2.OrderCreated) -> str:
        self.log.append(("process", event.order_id))
        return "paid"

    async def sleep(self, seconds: float) -> None:
        self.log.append(("sleep", seconds))


async def test_the_delay_comes_before_each_attempt() -> None:
    faults = FaultFlags(FaultSettings())
    faults.set_local("worker_delay_ms", 250)
    recorder = Recorder()
    flow = DelayedFlow(recorder, faults, sleep=recorder.sleep)  # type: ignore[arg-type]
    assert await flow.process(EVENT) == "paid"
    assert await flow.process(EVENT) == "paid"
    assert recorder.log == [("sleep", 0.25), ("process", "o1")] * 2


async def test_without_the_fault_the_flow_is_called_as_it_is() -> None:
    recorder = Recorder()
    flow = DelayedFlow(recorder, FaultFlags(FaultSettings()), sleep=recorder.sleep)  # type: ignore[arg-type]
    assert await flow.process(EVENT) == "paid"
    assert recorder.log == [("process", "o1")]
