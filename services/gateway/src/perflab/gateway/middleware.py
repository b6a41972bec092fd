"""ASGI middleware: request body size limit, in-flight requests, the trace id on responses."""

from prometheus_client import Gauge
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from perflab.common.telemetry import current_trace_id


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


class ActiveRequests:
    """Counts in-flight requests (`http.server.active_requests`), health checks excluded."""

    def __init__(self, app: ASGIApp, excluded: list[str]):
        self.app = app
        self.excluded = set(excluded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.excluded:
            await self.app(scope, receive, send)
            return
        with ACTIVE_REQUESTS.track_inprogress():
            await self.app(scope, receive, send)
