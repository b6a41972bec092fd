"""ASGI middleware: body size limit, load shedding, request deadline, the trace id on
responses, and the gateway's injected faults."""

import time
from contextvars import ContextVar

from prometheus_client import Counter, Gauge
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from perflab.common.faults import FaultFlags
from perflab.common.telemetry import current_trace_id

_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def remaining_budget(cap: float) -> float:
    """Seconds this request may still spend upstream: at most `cap`, never past its deadline.
    gRPC sends this on as the call's deadline, so the services give up when the client has."""
    deadline = _deadline.get()
    if deadline is None:
        return cap
    return max(0.0, min(cap, deadline - time.monotonic()))


class _TooLarge(HTTPException):
    """Raised from `receive`: FastAPI's body parsing passes HTTPExceptions on as they are."""

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body is larger than {max_bytes} bytes")


class BodySizeLimit:
    """Answers 413 for bodies over `max_bytes`, whether Content-Length says so up front or a
    chunked body turns out too long while it is read."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(send)
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = b'{"detail":"request body is larger than %d bytes"}' % self.max_bytes
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class TraceIdHeader:
    """Adds `X-Trace-Id`, so a slow response can be looked up in Jaeger."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                trace_id = current_trace_id()
                if trace_id:
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"], (b"x-trace-id", trace_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_trace)


ACTIVE_REQUESTS = Gauge("http_server_active_requests", "HTTP requests being served right now.")
SHED = Counter("http_server_shed_requests_total", "Requests refused with 503: too many in flight.")
_SHED_BODY = b'{"detail":"the gateway is at capacity; retry shortly"}'


class AdmissionControl:
    """Counts in-flight requests (`http.server.active_requests`) and sheds load: beyond
    `max_in_flight` a request gets 503 with Retry-After at once, instead of joining a queue
    that grows until latency, then memory, run out. Also starts each request's deadline."""

    def __init__(self, app: ASGIApp, excluded: list[str], max_in_flight: int, budget: float):
        self.app = app
        self.excluded = set(excluded)
        self.max_in_flight = max_in_flight
        self.budget = budget
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.excluded:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            SHED.inc()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"retry-after", b"1"),
                        (b"content-length", str(len(_SHED_BODY)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _SHED_BODY})
            return
        self.in_flight += 1
        token = _deadline.set(time.monotonic() + self.budget)
        try:
            with ACTIVE_REQUESTS.track_inprogress():
                await self.app(scope, receive, send)
        finally:
            _deadline.reset(token)
            self.in_flight -= 1


LEAKED: list[bytearray] = []  # what the memory_leak_kb fault keeps, on purpose


class InjectedFaults:
    """The gateway's faults: CPU burnt and memory kept per request."""

    def __init__(self, app: ASGIApp, faults: FaultFlags, excluded: list[str]):
        self.app = app
        self.faults = faults
        self.excluded = set(excluded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.excluded:
            burn_ms = self.faults.value("cpu_burn_ms")
            if burn_ms:
                end = time.perf_counter() + burn_ms / 1000
                while time.perf_counter() < end:  # on the event loop, as real CPU work is
                    pass
            leak_kb = self.faults.value("memory_leak_kb")
            if leak_kb:
                LEAKED.append(bytearray(int(leak_kb * 1024)))
        await self.app(scope, receive, send)
