"""The payments faults (`payments_unreachable`, `payments_error_rate`, `payments_latency_ms`),
applied to Charge by a gRPC server interceptor, so the servicer reads as the payments domain.

`serve()` runs it innermost: inside the RPC's span and its `rpc_server_duration_seconds`, on
the decoded request, where the servicer used to apply them. They act before the ledger is
touched, so they never leave a charge half-done; a hung or slow charge holds only its gRPC
call (no database connection, no lock), as before.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from perflab.common.faults import FaultFlags
from perflab.contracts.payments.v1 import payments_pb2

_SERVICE = payments_pb2.DESCRIPTOR.services_by_name["PaymentsService"].full_name
CHARGE = f"/{_SERVICE}/Charge"


class InjectedFaults(grpc.aio.ServerInterceptor):
    def __init__(self, faults: FaultFlags):
        self._faults = faults

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method != CHARGE:
            return handler  # health and reflection are never faulted
        charge = handler.unary_unary

        async def with_faults(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._act(context)
            return await charge(request, context)

        return grpc.unary_unary_rpc_method_handler(
            with_faults,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _act(self, context: grpc.aio.ServicerContext) -> None:
        if self._faults.value("payments_unreachable"):
            remaining = context.time_remaining()
            await asyncio.sleep(remaining + 1 if remaining is not None else 3600)
        if self._faults.chance("payments_error_rate"):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "payments failing (injected fault)")
        extra_ms = self._faults.value("payments_latency_ms")
        if extra_ms:
            await asyncio.sleep(extra_ms / 1000)
