"""Property-based fuzzing of the orders and payments gRPC servers (the real processes of the
e2e stack): arbitrary values in every field of every request message, and raw bytes that are
not a valid request at all. Every answer must be OK or a well-defined client-error code, never
UNKNOWN or INTERNAL (an unhandled exception in a handler), and the servers must stay up.

`FUZZ_EXAMPLES` sets the number of examples per method (default 30, CI-sized); for a longer
run: `FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest tests/e2e/test_fuzz_grpc.py`.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from perflab.common.pagination import encode_token
from perflab.contracts.orders.v1 import orders_pb2
from perflab.contracts.payments.v1 import payments_pb2
from perflab.dev.processes import ServiceProcesses

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # No shrinking: a failure prints the request it failed on, and shrinking huge requests
    # against a live server can take Hypothesis' five-minute shrink budget.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    print_blob=True,
    database=DirectoryBasedExampleDatabase(
        str(Path(__file__).parents[2] / ".pytest_cache" / "hypothesis")
    ),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

ORDERS = orders_pb2.DESCRIPTOR.services_by_name["OrdersService"]
PAYMENTS = payments_pb2.DESCRIPTOR.services_by_name["PaymentsService"]
METHODS = [*ORDERS.methods, *PAYMENTS.methods]

# What a request may be refused with: the caller sent something wrong, or (payments) another
# call is charging the same order right now.
CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
}
ALLOWED = {
    "OrdersService": CLIENT_ERRORS,
    "PaymentsService": CLIENT_ERRORS | {grpc.StatusCode.ABORTED},
}

INT_RANGES = {
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
}


def strings(known: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Any unicode, plus values that get past the first checks (UUIDs, currency codes,
    customer ids, ids of real orders) so the fuzzing reaches the database, plus edge cases."""
    return st.one_of(
        st.text(),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=60, max_size=300),
        st.uuids().map(str),
        st.sampled_from(["", "EUR", "USD", "\x00", "eur", "c-1", "PAID", " ", "%", "'--"]),
        st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
        st.from_regex(r"^[A-Z]{3}$"),  # may end in "\n", as `$` allows
        st.lists(st.text(max_size=40), max_size=3).map(lambda parts: encode_token(*parts)),
        st.sampled_from(known) if known else st.nothing(),
        st.tuples(st.sampled_from(["x", "é", "\U0001f600", "\x00"]), st.integers(1, 300_000)).map(
            lambda t: t[0] * t[1]  # huge: up to ~1.2 MB of UTF-8
        ),
    )


def integers(field: FieldDescriptor) -> st.SearchStrategy[int]:
    low, high = INT_RANGES[field.type]
    return st.one_of(
        st.integers(low, high),
        st.sampled_from([low, high, -1, 0, 1, 2**31 - 1, 2**31, 2**53 + 1]).filter(
            lambda v: low <= v <= high
        ),
        st.integers(-3, 600),  # around the seeded catalog's product ids and page sizes
    )


def field_values(field: FieldDescriptor, known: tuple[str, ...]) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        return strings(known)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary()
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_ENUM:  # proto3 enums are open: any int32 goes
        defined = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(defined), st.integers(-(2**31), 2**31 - 1))
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if field.type == FieldDescriptor.TYPE_FLOAT else 64)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, known)
    return integers(field)


def messages(descriptor: Descriptor, known: tuple[str, ...] = ()) -> st.SearchStrategy[Message]:
    """Any instance of the message: each field unset or set to an arbitrary value."""
    cls = GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        value = field_values(field, known)
        if field.is_repeated:
            fields[field.name] = st.one_of(
                st.lists(value, max_size=5), st.lists(value, min_size=40, max_size=120)
            )
        else:
            fields[field.name] = st.one_of(st.none(), value)
    return st.fixed_dictionaries(fields).map(
        lambda values: cls(**{k: v for k, v in values.items() if v is not None})
    )


def raw_requests() -> st.SearchStrategy[bytes]:
    """Bytes that are not a valid request: random, truncated, wrong wire types, a string field
    holding invalid UTF-8, unknown fields, deep nesting."""
    return st.one_of(
        st.binary(max_size=200),
        st.sampled_from(
            [
                b"\x0a\x02\xff\xfe",  # field 1, length-delimited, invalid UTF-8
                b"\x0a\xff\xff\xff\xff\x0f",  # field 1, length far beyond the message
                b"\x08" + b"\xff" * 11,  # a varint longer than 10 bytes
                b"\x0d\x00\x00",  # field 1, fixed32 cut short
                b"\x12\x05\x08\x01\x10\x01",  # a sub-message cut short
                b"\xfa\xff\xff\xff\x0f\x00",  # field 536870911 (unknown), empty
                b"\x12\x80\x01" * 200,  # nesting deeper than the parser allows
                b"\x00",  # field number 0
                b"\x0f",  # end-group without a start
            ]
        ),
    )


@pytest.fixture(scope="module")
def channels(stack: ServiceProcesses) -> Iterator[dict[str, grpc.Channel]]:
    ports = stack.config.ports
    with (
        grpc.insecure_channel(f"127.0.0.1:{ports.orders}") as orders,
        grpc.insecure_channel(f"127.0.0.1:{ports.payments}") as payments,
    ):
        yield {"OrdersService": orders, "PaymentsService": payments}


@pytest.fixture(scope="module")
def known_ids(channels: dict[str, grpc.Channel]) -> tuple[str, ...]:
    """Strings worth trying in any field: a real order's id and customer, a random UUID."""
    create = channels["OrdersService"].unary_unary(
        "/perflab.contracts.orders.v1.OrdersService/CreateOrder",
        request_serializer=orders_pb2.CreateOrderRequest.SerializeToString,
        response_deserializer=orders_pb2.Order.FromString,
    )
    order = create(
        orders_pb2.CreateOrderRequest(
            customer_id="fuzz", items=[orders_pb2.CreateOrderItem(product_id=7, quantity=1)]
        ),
        timeout=10,
    )
    return (order.id, order.customer_id, str(uuid.uuid4()))


def call(
    channel: grpc.Channel, method: MethodDescriptor, request: bytes
) -> tuple[grpc.StatusCode, str]:
    """Sends serialized bytes as the request of `method`; returns the status and details."""
    rpc = channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=None,
        response_deserializer=None,
    )
    try:
        rpc(request, timeout=20)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def check(method: MethodDescriptor, request: bytes, code: grpc.StatusCode, details: str) -> None:
    allowed = ALLOWED[method.containing_service.name] | {grpc.StatusCode.OK}
    assert code in allowed, (
        f"{method.full_name} answered {code.name} ({details[:300]!r}) "
        f"to a request of {len(request)} bytes: {request[:300]!r}"
    )


def assert_serving(
    stack: ServiceProcesses, channel: grpc.Channel, method: MethodDescriptor
) -> None:
    service = method.containing_service
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service.full_name), timeout=5
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    process = stack.processes["orders" if service is ORDERS else "payments"]
    assert process.poll() is None, f"{service.name} exited with {process.returncode}"


METHOD_IDS = {m: f"{m.containing_service.name}.{m.name}" for m in METHODS}


@pytest.mark.parametrize("method", METHODS, ids=METHOD_IDS.get)
def test_arbitrary_field_values_get_ok_or_a_client_error(
    stack: ServiceProcesses,
    channels: dict[str, grpc.Channel],
    known_ids: tuple[str, ...],
    method: MethodDescriptor,
) -> None:
    channel = channels[method.containing_service.name]

    @FUZZ
    @given(request=messages(method.input_type, known_ids))
    def fuzz(request: Message) -> None:
        payload = request.SerializeToString()
        check(method, payload, *call(channel, method, payload))

    fuzz()
    assert_serving(stack, channel, method)


@pytest.mark.parametrize("method", METHODS, ids=METHOD_IDS.get)
def test_raw_bytes_as_the_request_get_ok_or_a_client_error(
    stack: ServiceProcesses, channels: dict[str, grpc.Channel], method: MethodDescriptor
) -> None:
    channel = channels[method.containing_service.name]

    @FUZZ
    @given(payload=raw_requests())
    def fuzz(payload: bytes) -> None:
        check(method, payload, *call(channel, method, payload))

    fuzz()
    assert_serving(stack, channel, method)


def bad(method: str, request: Message | bytes, bug: str, reason: str) -> Any:
    """A request the fuzzing once broke a server with; `reason` says how (fixed since)."""
    service, name = method.split(".")
    descriptor = (ORDERS if service == "OrdersService" else PAYMENTS).methods_by_name[name]
    return pytest.param(
        descriptor,
        request,
        id=f"{method}-{bug}",
    )


NUL = "NUL characters reach PostgreSQL, which rejects them (CharacterNotInRepertoireError)"
PENDING = "<a pending order>"  # replaced by the id of an order created for the case
o, p = orders_pb2, payments_pb2

INPUTS_THAT_BROKE_THE_SERVERS_ONCE = [
    bad("OrdersService.ListProducts", o.ListProductsRequest(category="\x00"), "nul", NUL),
    bad(
        "OrdersService.CreateOrder",
        o.CreateOrderRequest(
            customer_id="c1",
            items=[o.CreateOrderItem(product_id=1, quantity=1)],
            idempotency_key="\x00",
        ),
        "nul",
        NUL,
    ),
    bad(
        "OrdersService.ApplyPaymentResult",
        o.ApplyPaymentResultRequest(
            order_id=PENDING, outcome=o.PAYMENT_OUTCOME_DECLINED, reason="\x00"
        ),
        "nul",
        NUL,
    ),
    bad(
        "PaymentsService.Charge",
        p.ChargeRequest(
            order_id=str(uuid.uuid4()), customer_id="\x00", amount_cents=1, currency="EUR"
        ),
        "nul",
        NUL,
    ),
    bad(
        "OrdersService.ApplyPaymentResult",
        o.ApplyPaymentResultRequest(
            order_id=PENDING, outcome=o.PAYMENT_OUTCOME_DECLINED, payment_id="x" * 65
        ),
        "too-long",
        "payment_id is not length-checked; orders.payment_id is VARCHAR(64)",
    ),
    bad(
        "PaymentsService.Charge",
        p.ChargeRequest(
            order_id=str(uuid.uuid4()), customer_id="c1", amount_cents=1, currency="EUR\n"
        ),
        "too-long",
        "CURRENCY.match with `$` accepts a trailing newline; payments.currency is VARCHAR(3)",
    ),
    bad(
        "OrdersService.ListProducts",
        o.ListProductsRequest(page_token=encode_token("9" * 30)),
        "token-range",
        "a page token's product id beyond BIGINT reaches PostgreSQL (DataError)",
    ),
    bad(
        "OrdersService.ListCustomerOrders",
        o.ListCustomerOrdersRequest(
            customer_id="c1",
            page_token=encode_token("0001-01-01T00:00:00+14:00", str(uuid.uuid4())),
        ),
        "token-range",
        "a page token's timestamp outside PostgreSQL's range reaches it (DataError)",
    ),
    bad(
        "OrdersService.GetOrder",
        o.GetOrderRequest(id="1" * 20_000),
        "echo",
        "the error echoes the whole id: its details exceed the client's metadata limit",
    ),
    bad(
        "PaymentsService.Charge",
        p.ChargeRequest(order_id="1" * 20_000, customer_id="c1", amount_cents=1, currency="EUR"),
        "echo",
        "the error echoes the whole order_id: its details exceed the client's metadata limit",
    ),
    bad(
        "OrdersService.GetProduct",
        b"\x0a\x05ab",  # field 1: 5 bytes announced, 2 sent
        "undecodable",
        "grpc.aio answers a request it cannot deserialize with UNKNOWN",
    ),
    bad(
        "PaymentsService.Charge",
        b"\x0a\x05ab",  # field 1: 5 bytes announced, 2 sent
        "undecodable",
        "grpc.aio answers a request it cannot deserialize with UNKNOWN",
    ),
]


def decline_a_fresh_order(
    channel: grpc.Channel, method: MethodDescriptor, template: Message
) -> tuple[grpc.StatusCode, str]:
    """Sends `template` (a DECLINED ApplyPaymentResult) for an order created just before, so
    that the UPDATE meets a PENDING row. The worker may pay the order first (the decline rate
    is 0 here): the answer is then a PAID order, and the case is tried on another one."""
    create = channel.unary_unary(
        f"/{ORDERS.full_name}/CreateOrder",
        request_serializer=o.CreateOrderRequest.SerializeToString,
        response_deserializer=o.Order.FromString,
    )
    for _ in range(5):
        order = create(
            o.CreateOrderRequest(
                customer_id="fuzz-regression", items=[o.CreateOrderItem(product_id=2, quantity=1)]
            ),
            timeout=10,
        )
        request = o.ApplyPaymentResultRequest()
        request.CopyFrom(template)
        request.order_id = order.id
        code, details = call(channel, method, request.SerializeToString())
        if code != grpc.StatusCode.OK:
            return code, details
        get = channel.unary_unary(
            f"/{ORDERS.full_name}/GetOrder",
            request_serializer=o.GetOrderRequest.SerializeToString,
            response_deserializer=o.Order.FromString,
        )
        if get(o.GetOrderRequest(id=order.id), timeout=10).status != o.ORDER_STATUS_PAID:
            return code, details
    pytest.fail("the worker paid every order before the request reached it")


@pytest.mark.parametrize(("method", "request_"), INPUTS_THAT_BROKE_THE_SERVERS_ONCE)
def test_inputs_that_broke_the_servers_once(
    stack: ServiceProcesses,
    channels: dict[str, grpc.Channel],
    method: MethodDescriptor,
    request_: Message | bytes,
) -> None:
    """What the fuzzing found, as exact requests."""
    channel = channels[method.containing_service.name]
    if isinstance(request_, o.ApplyPaymentResultRequest) and request_.order_id == PENDING:
        code, details = decline_a_fresh_order(channel, method, request_)
    else:
        payload = request_ if isinstance(request_, bytes) else request_.SerializeToString()
        code, details = call(channel, method, payload)
    allowed = ALLOWED[method.containing_service.name] | {grpc.StatusCode.OK}
    assert code in allowed, f"{code.name}: {details[:300]}"
    assert_serving(stack, channel, method)
