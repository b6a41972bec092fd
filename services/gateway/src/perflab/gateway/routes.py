"""The public API: /api/products, /api/orders, /api/customers/{id}/orders."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Response

from perflab.contracts.orders.v1 import orders_pb2
from perflab.gateway.convert import order_public, product_public
from perflab.gateway.deps import ClientsDep, ProductId, RateLimitedProductLookup, rate_limit
from perflab.gateway.idempotency import KeyReused, fingerprint
from perflab.gateway.middleware import remaining_budget
from perflab.gateway.schemas import (
    CustomerId,
    OrderCreate,
    OrderPage,
    OrderPublic,
    Problem,
    ProductPage,
    ProductPublic,
)

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem} for code in (404, 413, 422, 429, 503, 504)
}
router = APIRouter(prefix="/api", responses=ERRORS)
# Every route is rate limited: with this, or (product reads) with RateLimitedProductLookup.
RATE_LIMITED = [Depends(rate_limit)]

PageSize = Annotated[int, Query(ge=1, le=100, description="Items per page.")]
PageToken = Annotated[str | None, Query(max_length=512, description="From next_page_token.")]


@router.get("/products", response_model=ProductPage, tags=["catalog"], dependencies=RATE_LIMITED)
async def list_products(
    clients: ClientsDep,
    category: Annotated[str | None, Query(max_length=64)] = None,
    page_size: PageSize = 20,
    page_token: PageToken = None,
) -> ProductPage:
    request = orders_pb2.ListProductsRequest(
        category=category or "", page_size=page_size, page_token=page_token or ""
    )

    async def load() -> bytes:
        response = await clients.orders.ListProducts(
            request, timeout=remaining_budget(clients.settings.upstream_timeout_seconds)
        )
        return response.SerializeToString()  # type: ignore[no-any-return]

    key = f"list:{category or ''}:{page_size}:{page_token or ''}"
    page = orders_pb2.ListProductsResponse.FromString(await clients.product_cache.get(key, load))
    return ProductPage(
        products=[product_public(p) for p in page.products],
        next_page_token=page.next_page_token or None,
    )


@router.get("/products/{product_id}", response_model=ProductPublic, tags=["catalog"])
async def get_product(
    product_id: ProductId,
    known: RateLimitedProductLookup,
    clients: ClientsDep,
) -> ProductPublic:
    async def load() -> bytes:
        product = await clients.orders.GetProduct(
            orders_pb2.GetProductRequest(id=product_id),
            timeout=remaining_budget(clients.settings.upstream_timeout_seconds),
        )
        return product.SerializeToString()  # type: ignore[no-any-return]

    cached = await clients.product_cache.get(str(product_id), load, known)
    return product_public(orders_pb2.Product.FromString(cached))


@router.post(
    "/orders",
    status_code=202,
    response_model=OrderPublic,
    tags=["orders"],
    responses={202: {"headers": {"Location": {"description": "URL of the new order"}}}},
    dependencies=RATE_LIMITED,
)
async def create_order(
    body: OrderCreate,
    response: Response,
    clients: ClientsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=128,
            pattern=r"^[\x21-\x7e]+$",
            description="Retries with the same key return the same order.",
        ),
    ] = None,
) -> OrderPublic:
    """Accepts an order (202): payment happens asynchronously; poll the Location."""
    request_fingerprint = fingerprint(body.model_dump())
    if idempotency_key:
        try:
            stored = await clients.idempotency.lookup(idempotency_key, request_fingerprint)
        except KeyReused as exc:
            raise HTTPException(422, str(exc)) from exc
        if stored is not None:
            order = orders_pb2.Order.FromString(stored)
            response.headers["Location"] = f"/api/orders/{order.id}"
            response.headers["Idempotent-Replayed"] = "true"
            return order_public(order)
    order = await clients.orders.CreateOrder(
        orders_pb2.CreateOrderRequest(
            customer_id=body.customer_id,
            items=[
                orders_pb2.CreateOrderItem(product_id=i.product_id, quantity=i.quantity)
                for i in body.items
            ],
            idempotency_key=idempotency_key or "",
        ),
        timeout=remaining_budget(clients.settings.upstream_timeout_seconds),
    )
    if idempotency_key:
        await clients.idempotency.save(
            idempotency_key, request_fingerprint, order.SerializeToString()
        )
    response.headers["Location"] = f"/api/orders/{order.id}"
    return order_public(order)


@router.get(
    "/orders/{order_id}", response_model=OrderPublic, tags=["orders"], dependencies=RATE_LIMITED
)
async def get_order(
    order_id: Annotated[str, Path(max_length=64)], clients: ClientsDep
) -> OrderPublic:
    order = await clients.orders.GetOrder(
        orders_pb2.GetOrderRequest(id=order_id),
        timeout=remaining_budget(clients.settings.upstream_timeout_seconds),
    )
    return order_public(order)


@router.get(
    "/customers/{customer_id}/orders",
    response_model=OrderPage,
    tags=["orders"],
    dependencies=RATE_LIMITED,
)
async def list_customer_orders(
    customer_id: Annotated[CustomerId, Path()],
    clients: ClientsDep,
    page_size: PageSize = 20,
    page_token: PageToken = None,
) -> OrderPage:
    """A customer's orders, newest first."""
    page = await clients.orders.ListCustomerOrders(
        orders_pb2.ListCustomerOrdersRequest(
            customer_id=customer_id, page_size=page_size, page_token=page_token or ""
        ),
        timeout=remaining_budget(clients.settings.upstream_timeout_seconds),
    )
    return OrderPage(
        orders=[order_public(o) for o in page.orders],
        next_page_token=page.next_page_token or None,
    )
