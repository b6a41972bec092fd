"""Request and response models of the public API (`...Create` in, `...Public` out)."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

CustomerId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", examples=["c-42"])
]


INT64_MAX = 2**63 - 1  # ids travel as protobuf int64


class ProductPublic(BaseModel):
    id: int
    sku: str
    name: str
    description: str
    category: str
    price_cents: int
    currency: str


class ProductPage(BaseModel):
    products: list[ProductPublic]
    next_page_token: str | None = Field(description="Pass as page_token for the next page.")


class OrderItemCreate(BaseModel):
    product_id: int = Field(gt=0, le=INT64_MAX)
    quantity: int = Field(ge=1, le=100)


class OrderCreate(BaseModel):
    customer_id: CustomerId
    items: list[OrderItemCreate] = Field(min_length=1, max_length=50)


class OrderItemPublic(BaseModel):
    product_id: int
    quantity: int
    unit_price_cents: int


OrderStatus = Literal["PENDING", "PAID", "PAYMENT_FAILED"]


class OrderPublic(BaseModel):
    id: str
    customer_id: str
    status: OrderStatus
    items: list[OrderItemPublic]
    total_cents: int
    currency: str
    created_at: datetime
    updated_at: datetime
    failure_reason: str | None = None


class OrderPage(BaseModel):
    orders: list[OrderPublic]
    next_page_token: str | None


class Problem(BaseModel):
    detail: str | list[dict[str, object]]
