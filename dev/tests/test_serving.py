"""`served`: a serve()-based server inside the test process, stopped by SIGTERM on the way out
even when the test leaves early, and the signal given back afterwards."""

import asyncio
import signal

from perflab.common.grpc import serve
from perflab.dev.serving import served


async def test_leaving_early_stops_the_server_gracefully_and_gives_sigterm_back() -> None:
    default_handler = signal.getsignal(signal.SIGTERM)
    stopped = asyncio.Event()

    async def on_stop() -> None:
        stopped.set()

    async with served(serve(lambda server: [], "127.0.0.1", 0, 30, on_stop)) as server:
        assert server.port > 0 and not server.task.done()
        assert signal.getsignal(signal.SIGTERM) is not default_handler
    assert server.task.done() and stopped.is_set()  # serve() ran its graceful stop
    assert signal.getsignal(signal.SIGTERM) is default_handler
