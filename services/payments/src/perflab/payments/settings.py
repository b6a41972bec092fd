from functools import lru_cache

from pydantic import Field

from perflab.common.faults import FaultSettings
from perflab.common.settings import (
    LOCAL_PAYMENTS_PORT,
    DatabaseSettings,
    GrpcServerSettings,
    ServiceSettings,
    local_database_url,
)


class Settings(ServiceSettings, DatabaseSettings, GrpcServerSettings, FaultSettings):
    service_name: str = "payments"
    database_url: str = local_database_url("payments")
    grpc_port: int = LOCAL_PAYMENTS_PORT
    payment_latency_median_ms: float = Field(
        default=40.0, ge=0, description="Median latency of the simulated card processor."
    )
    payment_latency_p99_ms: float = Field(
        default=200.0, ge=0, description="Its 99th percentile (a log-normal fits both)."
    )
    payment_decline_rate: float = Field(
        default=0.05, ge=0, le=1, description="Share of charges the processor declines."
    )
    processing_takeover_seconds: float = Field(
        default=30.0, gt=0, description="A charge stuck in PROCESSING this long is retried."
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
