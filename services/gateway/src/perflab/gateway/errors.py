"""Upstream gRPC errors as HTTP answers with a reason: never a bare 500."""

import grpc
from fastapi import Request
from fastapi.responses import JSONResponse

# gRPC code -> (HTTP status, whether the client may retry after a pause)
_HTTP: dict[grpc.StatusCode, tuple[int, bool]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (422, False),
    grpc.StatusCode.OUT_OF_RANGE: (422, False),
    grpc.StatusCode.ALREADY_EXISTS: (422, False),
    grpc.StatusCode.NOT_FOUND: (404, False),
    grpc.StatusCode.FAILED_PRECONDITION: (409, False),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, True),
    grpc.StatusCode.UNAVAILABLE: (503, True),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (503, True),
    grpc.StatusCode.ABORTED: (503, True),
    grpc.StatusCode.CANCELLED: (503, True),
}


def http_status(code: grpc.StatusCode) -> tuple[int, bool]:
    return _HTTP.get(code, (502, False))


async def grpc_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, grpc.aio.AioRpcError)
    status, retry = http_status(exc.code())
    if status in (422, 404, 409):
        detail = exc.details() or exc.code().name
    elif status == 504:
        detail = "the orders service did not answer in time"
    elif status == 503:
        detail = "the orders service is unavailable; retry shortly"
    else:
        detail = f"the orders service failed ({exc.code().name})"
    headers = {"Retry-After": "1"} if retry else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)
