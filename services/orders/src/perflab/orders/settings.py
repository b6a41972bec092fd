from functools import lru_cache
from typing import Literal

from pydantic import Field

from perflab.common.faults import FaultSettings
from perflab.common.settings import (
    LOCAL_HOST,
    LOCAL_ORDERS_PORT,
    LOCAL_PAYMENTS_PORT,
    DatabaseSettings,
    GrpcServerSettings,
    KafkaSettings,
    ServiceSettings,
    local_database_url,
)


class Settings(ServiceSettings, DatabaseSettings, GrpcServerSettings, KafkaSettings, FaultSettings):
    service_name: str = "orders"
    database_url: str = local_database_url("orders")
    grpc_port: int = LOCAL_ORDERS_PORT
    outbox_poll_interval_seconds: float = Field(
        default=0.5, gt=0, description="Relay poll period when no new order woke it up."
    )
    outbox_batch_size: int = Field(default=200, ge=1, description="Events published per batch.")
    max_order_items: int = Field(default=50, ge=1, description="Distinct products per order.")
    max_item_quantity: int = Field(default=100, ge=1, description="Units of one product.")
    max_page_size: int = Field(default=100, ge=1, description="Upper bound for page_size.")
    payment_mode: Literal["async", "sync"] = Field(
        default="async",
        description="async: the worker charges orders from their Kafka event; sync: CreateOrder "
        "charges them before it returns (the worker stays the fallback).",
    )
    payments_addr: str = Field(
        default=f"{LOCAL_HOST}:{LOCAL_PAYMENTS_PORT}",
        description="payments gRPC host:port (PAYMENT_MODE=sync).",
    )
    payment_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Deadline of the synchronous charge (or the caller's)."
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
