"""gRPC helpers: a grpc.aio server with health, reflection, RED metrics and SIGTERM handling,
and instrumented client channels."""

import asyncio
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
    filters,
)

from perflab.common.metrics import RPC_CLIENT_DURATION, RPC_SERVER_DURATION, observe

log = logging.getLogger(__name__)


def _split_method(full_method: str) -> tuple[str, str]:
    # "/perflab.contracts.orders.v1.OrdersService/GetOrder" -> (service, method)
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


class ServerMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Records `rpc_server_duration_seconds` for unary-unary handlers, by status code, and
    answers an undecodable request with INVALID_ARGUMENT (grpc.aio itself says UNKNOWN).

    `outage_reason` tells which unexpected errors mean a dependency is down or saturated (a
    restarted database, say): those answer UNAVAILABLE with its reason, so clients retry
    instead of seeing UNKNOWN.
    """

    def __init__(self, outage_reason: Callable[[BaseException], str | None] | None = None):
        self._outage_reason = outage_reason

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, method = _split_method(handler_call_details.method)
        inner = handler.unary_unary
        deserialize = handler.request_deserializer

        async def timed(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                try:
                    request = deserialize(raw) if deserialize else raw
                except DecodeError:
                    code = grpc.StatusCode.INVALID_ARGUMENT
                    await context.abort(code, f"the request is not a valid {method} message")
                return await inner(request, context)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                reason = (
                    self._outage_reason(exc)
                    if self._outage_reason and not isinstance(exc, grpc.aio.AbortError)
                    else None
                )
                if reason is not None:
                    code = grpc.StatusCode.UNAVAILABLE
                    await context.abort(code, reason)
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                if code is grpc.StatusCode.OK and context.code() not in (None, grpc.StatusCode.OK):
                    code = context.code()
                observe(
                    RPC_SERVER_DURATION,
                    time.perf_counter() - start,
                    rpc_service=service,
                    rpc_method=method,
                    rpc_grpc_status_code=str(code.value[0]),
                )

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=None,  # raw bytes: `timed` decodes them itself
            response_serializer=handler.response_serializer,
        )


class ClientMetricsInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Records `rpc_client_duration_seconds` for every unary call on the channel."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        service, name = _split_method(method)
        start = time.perf_counter()
        call = await continuation(client_call_details, request)
        try:
            await call
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        observe(
            RPC_CLIENT_DURATION,
            time.perf_counter() - start,
            rpc_service=service,
            rpc_method=name,
            rpc_grpc_status_code=str(code.value[0]),
        )
        return call


def insecure_channel(target: str, service_config: dict[str, Any] | None = None) -> grpc.aio.Channel:
    """A client channel with tracing (context propagation) and client metrics. gRPC's own
    retries are off unless `service_config` defines a retry policy."""
    options: list[tuple[str, Any]] = [("grpc.keepalive_time_ms", 30_000)]
    if service_config:
        options += [("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(service_config))]
    else:
        options.append(("grpc.enable_retries", 0))
    return grpc.aio.insecure_channel(
        target,
        interceptors=[*aio_client_interceptors(), ClientMetricsInterceptor()],
        options=options,
    )


async def serve(
    register: Callable[[grpc.aio.Server], Iterable[str]],
    host: str,
    port: int,
    grace_seconds: float,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    outage_reason: Callable[[BaseException], str | None] | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> None:
    """Runs a grpc.aio server until SIGTERM/SIGINT.

    `register` adds the servicers and returns their full service names, which get a health
    status and reflection. `outage_reason`: see ServerMetricsInterceptor. `interceptors` run
    innermost: inside the tracing span and the RPC metrics, on the decoded request, as code
    in the servicer would (a service's injected faults). On SIGTERM the health service flips
    to NOT_SERVING (so the load balancer stops sending work), then in-flight RPCs get
    `grace_seconds` to finish.
    """
    server = grpc.aio.server(
        interceptors=[
            # Health checks are not traced: probes every few seconds are noise in the traces,
            # and the tracing interceptor breaks the Watch stream that shows NOT_SERVING while
            # the server drains (opentelemetry-python-contrib issue 3066).
            aio_server_interceptor(filter_=filters.negate(filters.health_check())),
            ServerMetricsInterceptor(outage_reason),
            *interceptors,
        ],
        # Clients keep one HTTP/2 connection for good; ending it after a while makes them
        # reconnect through the Service, so replicas the HPA adds receive traffic too.
        options=[
            ("grpc.max_connection_age_ms", 30_000),
            ("grpc.max_connection_age_grace_ms", 10_000),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(register(server))
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("grpc server listening", extra={"port": bound, "services": names})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down", extra={"grace_seconds": grace_seconds})
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_seconds)
    if on_stop is not None:
        await on_stop()
