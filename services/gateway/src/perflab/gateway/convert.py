"""Protobuf messages to API models."""

from datetime import UTC

from perflab.contracts.orders.v1 import orders_pb2
from perflab.gateway.schemas import OrderItemPublic, OrderPublic, OrderStatus, ProductPublic

_STATUS: dict[int, OrderStatus] = {
    orders_pb2.ORDER_STATUS_PENDING: "PENDING",
    orders_pb2.ORDER_STATUS_PAID: "PAID",
    orders_pb2.ORDER_STATUS_PAYMENT_FAILED: "PAYMENT_FAILED",
}


def product_public(p: orders_pb2.Product) -> ProductPublic:
    return ProductPublic(
        id=p.id,
        sku=p.sku,
        name=p.name,
        description=p.description,
        category=p.category,
        price_cents=p.price_cents,
        currency=p.currency,
    )


def order_public(o: orders_pb2.Order) -> OrderPublic:
    return OrderPublic(
        id=o.id,
        customer_id=o.customer_id,
        status=_STATUS[o.status],
        items=[
            OrderItemPublic(
                product_id=i.product_id, quantity=i.quantity, unit_price_cents=i.unit_price_cents
            )
            for i in o.items
        ],
        total_cents=o.total_cents,
        currency=o.currency,
        created_at=o.created_at.ToDatetime(tzinfo=UTC),
        updated_at=o.updated_at.ToDatetime(tzinfo=UTC),
        failure_reason=o.failure_reason or None,
    )
