from functools import lru_cache

from pydantic import Field

from perflab.common.faults import FaultSettings
from perflab.common.settings import (
    LOCAL_ADMIN_PORT,
    LOCAL_GATEWAY_PORT,
    LOCAL_HOST,
    LOCAL_ORDERS_PORT,
    LOCAL_REDIS_URL,
    ServiceSettings,
)


class Settings(ServiceSettings, FaultSettings):
    service_name: str = "gateway"
    http_host: str = Field(default="127.0.0.1", description="Interface uvicorn binds.")
    http_port: int = Field(default=LOCAL_GATEWAY_PORT, description="HTTP port of the public API.")
    orders_addr: str = Field(
        default=f"{LOCAL_HOST}:{LOCAL_ORDERS_PORT}", description="orders gRPC host:port."
    )
    redis_url: str = Field(default=LOCAL_REDIS_URL)
    redis_key_prefix: str = Field(default="", description="Prepended to every Redis key.")
    redis_timeout_seconds: float = Field(default=0.5, gt=0, description="Per Redis command.")
    upstream_timeout_seconds: float = Field(
        default=3.0, gt=0, description="Deadline of each call to the orders service."
    )
    cache_enabled: bool = Field(default=True, description="Cache-aside for product reads.")
    cache_coalesce: bool = Field(
        default=True,
        description="Stampede protection: concurrent misses of one key share a single load.",
    )
    cache_ttl_seconds: int = Field(default=60, ge=1, description="Lifetime of a cached product.")
    idempotency_ttl_seconds: int = Field(
        default=86400, ge=1, description="How long an Idempotency-Key is remembered."
    )
    rate_limit_enabled: bool = Field(default=True, description="Per-client limit in Redis.")
    rate_limit_requests: int = Field(default=1000, ge=1, description="Requests per window.")
    rate_limit_window_seconds: int = Field(default=1, ge=1, description="Window length.")
    admin_host: str = Field(
        default="127.0.0.1", description="Interface of the admin API (faults); never public."
    )
    admin_port: int = Field(default=LOCAL_ADMIN_PORT, description="Port of the admin API; 0 = off.")
    max_in_flight: int = Field(
        default=256, ge=1, description="Requests served at once; more are shed with 503."
    )
    request_budget_seconds: float = Field(
        default=5.0, gt=0, description="Time one request may take in all, retries included."
    )
    max_body_bytes: int = Field(default=65536, ge=1, description="Larger bodies get 413.")


@lru_cache
def get_settings() -> Settings:
    return Settings()
