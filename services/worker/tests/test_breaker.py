"""The circuit breaker around payments: opens on sickness, not on rejected requests, and
closes again by itself."""

from datetime import datetime, timedelta

import aiobreaker.circuitbreaker
import aiobreaker.state
import grpc
import pytest

from perflab.contracts.events.v1 import events_pb2
from perflab.contracts.payments.v1 import payments_pb2
from perflab.worker.payment_flow import (
    BREAKER_STATE,
    CircuitOpen,
    PaymentFlow,
    PermanentError,
    TransientError,
    payments_breaker,
)


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x")


class Payments:
    def __init__(self) -> None:
        self.error: grpc.aio.AioRpcError | None = None
        self.calls = 0

    async def Charge(self, request: object, timeout: float) -> payments_pb2.Payment:
        self.calls += 1
        if self.error:
            raise self.error
        return payments_pb2.Payment(id="p", status=payments_pb2.PAYMENT_STATUS_APPROVED)


class Orders:
    async def ApplyPaymentResult(self, request: object, timeout: float) -> None:
        return None


EVENT = events_pb2.OrderCreated(order_id="o1", customer_id="c", total_cents=5, currency="EUR")


class Clock:
    """The breaker library's clock, moved by the test instead of by waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, 0)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """aiobreaker reads `datetime.utcnow()`/`datetime.now()` (naive, in its state and breaker
    modules) to decide when an open breaker may try again; both read this clock instead."""
    clock = Clock()

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: object = None) -> "FrozenDatetime":  # type: ignore[override]
            return cls.fromtimestamp(clock.now.timestamp())

        @classmethod
        def utcnow(cls) -> "FrozenDatetime":  # type: ignore[override]
            return cls.now()

    for module in (aiobreaker.state, aiobreaker.circuitbreaker):
        monkeypatch.setattr(module, "datetime", FrozenDatetime)
    return clock


async def test_breaker_opens_after_transient_failures_and_closes_after_the_reset(
    clock: Clock,
) -> None:
    payments = Payments()
    flow = PaymentFlow(Orders(), payments, 1.0, payments_breaker(3, 10))  # type: ignore[arg-type]
    payments.error = rpc_error(grpc.StatusCode.UNAVAILABLE)
    for _ in range(2):
        with pytest.raises(TransientError):
            await flow.process(EVENT)
    with pytest.raises(CircuitOpen):  # the third failure trips it
        await flow.process(EVENT)
    assert BREAKER_STATE.labels("payments")._value.get() == 2
    calls = payments.calls
    with pytest.raises(CircuitOpen):  # open: payments is not called at all
        await flow.process(EVENT)
    assert payments.calls == calls
    payments.error = None
    clock.advance(9.9)  # still inside the 10 s reset: payments stays untouched
    with pytest.raises(CircuitOpen):
        await flow.process(EVENT)
    assert payments.calls == calls
    clock.advance(0.2)  # the reset is over: one trial call, which succeeds and closes it
    assert (await flow.process(EVENT)).status == payments_pb2.PAYMENT_STATUS_APPROVED
    assert BREAKER_STATE.labels("payments")._value.get() == 0


async def test_rejected_requests_do_not_open_the_breaker() -> None:
    payments = Payments()
    flow = PaymentFlow(Orders(), payments, 1.0, payments_breaker(2, 60))  # type: ignore[arg-type]
    payments.error = rpc_error(grpc.StatusCode.INVALID_ARGUMENT)
    for _ in range(5):
        with pytest.raises(PermanentError):
            await flow.process(EVENT)
    assert payments.calls == 5
