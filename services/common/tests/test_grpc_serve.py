"""The shared gRPC `serve()` on SIGTERM: health flips to NOT_SERVING first, then in-flight RPCs
get the grace period to finish (and are cut when it runs out), then `on_stop` runs.

A real grpc.aio server on a free port, a real SIGTERM to this process (serve() handles it on
the running loop), and a held RPC standing for work in flight: the test decides when it ends,
so nothing here depends on how fast the machine is.

NOT_SERVING is seen the way a client sees it while the server drains: on a health Watch
stream opened before the signal (a Check sent after it races the listener's close). The stream
goes through serve()'s own interceptors, tracing included (serve() leaves health checks
untraced: OpenTelemetry's aio server interceptor breaks Watch, opentelemetry-python-contrib
issue 3066).
"""

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from perflab.common.grpc import serve
from perflab.dev.serving import Served, served

SERVICE = "perflab.test.Held"
METHOD = f"/{SERVICE}/Hold"
WAIT = 30  # seconds: only a bound on a hang; every wait below ends on a condition


@dataclass
class HeldService:
    """One unary method that answers only once the test releases it."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def hold(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return b"done"

    def register(self, server: grpc.aio.Server) -> Iterable[str]:
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Hold": grpc.unary_unary_rpc_method_handler(self.hold)}
        )
        server.add_generic_rpc_handlers((handler,))
        return [SERVICE]


@dataclass
class Running:
    service: HeldService
    server: Served
    channel: grpc.aio.Channel
    stopped: asyncio.Event

    async def hold(self) -> bytes:
        call = self.channel.unary_unary(METHOD)
        return await call(b"", timeout=WAIT)  # type: ignore[no-any-return]


@pytest.fixture
async def running(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """serve() started with the grace period the test gives (`indirect` parameter)."""
    grace: float = request.param
    service, stopped = HeldService(), asyncio.Event()

    async def on_stop() -> None:
        stopped.set()

    async with served(serve(service.register, "127.0.0.1", 0, grace, on_stop)) as server:
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield Running(service, server, channel, stopped)
        finally:
            service.release.set()  # a test that left early stops without waiting for grace


def watch_health(channel: grpc.aio.Channel) -> Any:
    """A health Watch stream of the whole server (service ""); `await .read()` per update."""
    return health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))


@pytest.mark.parametrize("running", [WAIT], indirect=True)
async def test_sigterm_flips_health_then_lets_in_flight_work_finish(running: Running) -> None:
    check = health_pb2_grpc.HealthStub(running.channel).Check
    for name in ("", SERVICE):
        response = await check(health_pb2.HealthCheckRequest(service=name), timeout=WAIT)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    watch = watch_health(running.channel)
    assert (await asyncio.wait_for(watch.read(), WAIT)).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    in_flight = asyncio.create_task(running.hold())
    await asyncio.wait_for(running.service.started.wait(), WAIT)

    running.server.sigterm()

    # First the load balancer is told: NOT_SERVING while the held RPC is still in flight...
    assert (await asyncio.wait_for(watch.read(), WAIT)).status == (
        health_pb2.HealthCheckResponse.NOT_SERVING
    )
    assert not in_flight.done() and not running.server.task.done() and not running.stopped.is_set()
    watch.cancel()  # (an open Watch is in-flight work too: it would hold the server to the end)
    # ...then the RPC in flight finishes normally within the grace period, and serve() returns
    # after on_stop.
    running.service.release.set()
    assert await asyncio.wait_for(in_flight, WAIT) == b"done"
    await asyncio.wait_for(running.server.task, WAIT)
    assert running.stopped.is_set()
    assert not running.service.cancelled.is_set()


@pytest.mark.parametrize("running", [0.2], indirect=True)
async def test_sigterm_cuts_work_that_outlasts_the_grace_period(running: Running) -> None:
    in_flight = asyncio.create_task(running.hold())
    await asyncio.wait_for(running.service.started.wait(), WAIT)

    running.server.sigterm()

    # Never released: serve() stops anyway once the grace period is over, cancelling the RPC.
    await asyncio.wait_for(running.server.task, WAIT)
    assert running.stopped.is_set()
    await asyncio.wait_for(running.service.cancelled.wait(), WAIT)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await asyncio.wait_for(in_flight, WAIT)
    assert error.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
