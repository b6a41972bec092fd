"""A gRPC server run by `perflab.common.grpc.serve()` inside a test's own process, for tests
of what it does on SIGTERM: the test sends the signal to its own process, and serve() handles
it on the running event loop."""

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from perflab.common.faults import FaultFlags
from perflab.dev.waiting import TIMEOUT, until

LISTENING = "grpc server listening"  # serve()'s log record, with the bound port


@dataclass
class Served:
    task: "asyncio.Task[None]"
    port: int

    def sigterm(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


class _Listening(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.port: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == LISTENING:
            self.port = int(record.port)  # type: ignore[attr-defined]


@asynccontextmanager
async def served(main: Coroutine[Any, Any, None]) -> AsyncIterator[Served]:
    """Runs `main`, a coroutine that ends in serve() (bind it to port 0), as a task. Yields once
    the server listens and SIGTERM is serve()'s to handle (before that, the signal would end
    the test process). On the way out: a SIGTERM if it still runs (a graceful stop), the task
    awaited, and SIGTERM and SIGINT given back, since the test's event loop outlives it."""
    logger = logging.getLogger("perflab.common.grpc")
    listening, level = _Listening(), logger.level
    logger.addHandler(listening)
    logger.setLevel(logging.INFO)
    default_handler = signal.getsignal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(main)
    try:
        await until(
            lambda: task.done() or listening.port is not None, "serve() to listen", every=0.01
        )
        if listening.port is None:
            task.result()  # its exception, or:
            raise RuntimeError("the server ended before it listened")
        await until(
            lambda: signal.getsignal(signal.SIGTERM) is not default_handler,
            "serve() to handle SIGTERM",
            every=0.01,
        )
        yield Served(task, listening.port)
    finally:
        logger.removeHandler(listening)
        logger.setLevel(level)
        if not task.done() and signal.getsignal(signal.SIGTERM) is not default_handler:
            os.kill(os.getpid(), signal.SIGTERM)
        try:
            await asyncio.wait_for(task, TIMEOUT)  # cancelled after that, and a TimeoutError
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGINT)


class ClosingEngine:
    """Stands in for a service's database engine: records its disposal in `events`."""

    def __init__(self, events: list[str]):
        self._events = events

    async def dispose(self) -> None:
        self._events.append("engine disposed")


def quiet_fault_switches(events: list[str]) -> type[FaultFlags]:
    """The real fault switches, all off, without their Redis; their closing is recorded in
    `events`."""

    class Switches(FaultFlags):
        async def start(self) -> None:
            pass

        async def stop(self) -> None:
            events.append("fault switches closed")

    return Switches
