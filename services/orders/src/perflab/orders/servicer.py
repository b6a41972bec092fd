"""The OrdersService gRPC servicer: maps protobuf to the repository and errors to codes."""

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc

from perflab.contracts.orders.v1 import orders_pb2, orders_pb2_grpc
from perflab.orders.models import Order, Product
from perflab.orders.payment import SyncPayer
from perflab.orders.repository import (
    Conflict,
    DomainError,
    InvalidArgument,
    NewItem,
    NotFound,
    Repository,
    timestamp,
)

_CODES: dict[type[DomainError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Conflict: grpc.StatusCode.ALREADY_EXISTS,
}
_STATUS = {
    "PENDING": orders_pb2.ORDER_STATUS_PENDING,
    "PAID": orders_pb2.ORDER_STATUS_PAID,
    "PAYMENT_FAILED": orders_pb2.ORDER_STATUS_PAYMENT_FAILED,
}

R = TypeVar("R")


def domain_errors(
    handler: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    """Turns DomainError into the matching gRPC status with the error text as details."""

    @wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await handler(self, request, context)
        except DomainError as exc:
            await context.abort(_CODES[type(exc)], str(exc))
            raise  # unreachable: abort raises

    return wrapper


def product_pb(p: Product) -> orders_pb2.Product:
    return orders_pb2.Product(
        id=p.id,
        sku=p.sku,
        name=p.name,
        description=p.description,
        category=p.category,
        price_cents=p.price_cents,
        currency=p.currency,
    )


def order_pb(o: Order) -> orders_pb2.Order:
    return orders_pb2.Order(
        id=str(o.id),
        customer_id=o.customer_id,
        status=_STATUS[o.status],
        items=[
            orders_pb2.OrderItem(
                product_id=i.product_id, quantity=i.quantity, unit_price_cents=i.unit_price_cents
            )
            for i in o.items
        ],
        total_cents=o.total_cents,
        currency=o.currency,
        created_at=timestamp(o.created_at),
        updated_at=timestamp(o.updated_at),
        failure_reason=o.failure_reason or "",
    )


class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(
        self,
        repository: Repository,
        on_order_created: Callable[[], None],
        payer: SyncPayer | None = None,
    ):
        self._repo = repository
        self._on_order_created = on_order_created
        self._payer = payer  # PAYMENT_MODE=sync

    @domain_errors
    async def GetProduct(
        self, request: orders_pb2.GetProductRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Product:
        return product_pb(await self._repo.get_product(request.id))

    @domain_errors
    async def ListProducts(
        self, request: orders_pb2.ListProductsRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListProductsResponse:
        products, token = await self._repo.list_products(
            request.category, request.page_size, request.page_token
        )
        return orders_pb2.ListProductsResponse(
            products=[product_pb(p) for p in products], next_page_token=token
        )

    @domain_errors
    async def CreateOrder(
        self, request: orders_pb2.CreateOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Order:
        order, created = await self._repo.create_order(
            request.customer_id,
            [NewItem(i.product_id, i.quantity) for i in request.items],
            request.idempotency_key,
        )
        if created:
            self._on_order_created()
            if self._payer is not None:
                order = await self._payer.settle(order, context.time_remaining())
        else:
            await context.send_initial_metadata((("x-idempotent-replay", "true"),))
        return order_pb(order)

    @domain_errors
    async def GetOrder(
        self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Order:
        return order_pb(await self._repo.get_order(request.id))

    @domain_errors
    async def ListCustomerOrders(
        self, request: orders_pb2.ListCustomerOrdersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListCustomerOrdersResponse:
        orders, token = await self._repo.list_customer_orders(
            request.customer_id, request.page_size, request.page_token
        )
        return orders_pb2.ListCustomerOrdersResponse(
            orders=[order_pb(o) for o in orders], next_page_token=token
        )

    @domain_errors
    async def ApplyPaymentResult(
        self, request: orders_pb2.ApplyPaymentResultRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Order:
        if request.outcome == orders_pb2.PAYMENT_OUTCOME_UNSPECIFIED:
            raise InvalidArgument("outcome must be APPROVED or DECLINED")
        order = await self._repo.apply_payment_result(
            request.order_id,
            request.outcome == orders_pb2.PAYMENT_OUTCOME_APPROVED,
            request.payment_id,
            request.reason,
        )
        return order_pb(order)
