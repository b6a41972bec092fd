from functools import lru_cache

from pydantic import Field

from perflab.common.faults import FaultSettings
from perflab.common.settings import (
    LOCAL_HOST,
    LOCAL_ORDERS_PORT,
    LOCAL_PAYMENTS_PORT,
    KafkaSettings,
    ServiceSettings,
)


class Settings(ServiceSettings, KafkaSettings, FaultSettings):
    service_name: str = "worker"
    http_host: str = Field(default="127.0.0.1", description="Interface for /metrics, /healthz.")
    http_port: int = Field(default=9464, description="Port for /metrics, /healthz, /readyz.")
    orders_addr: str = Field(
        default=f"{LOCAL_HOST}:{LOCAL_ORDERS_PORT}", description="orders gRPC host:port."
    )
    payments_addr: str = Field(
        default=f"{LOCAL_HOST}:{LOCAL_PAYMENTS_PORT}", description="payments gRPC host:port."
    )
    consumer_group: str = Field(default="perflab-worker", description="Kafka consumer group.")
    rpc_timeout_seconds: float = Field(default=5.0, gt=0, description="Deadline of each RPC.")
    max_attempts: int = Field(default=5, ge=1, description="Tries of a transient failure.")
    retry_backoff_seconds: float = Field(default=0.2, gt=0, description="First retry delay.")
    retry_backoff_max_seconds: float = Field(default=5.0, gt=0, description="Delay cap.")
    retry_pause_seconds: float = Field(
        default=5.0, gt=0, description="Pause of a partition whose message exhausted retries."
    )
    commit_interval_seconds: float = Field(default=1.0, gt=0, description="Offset commit period.")
    dead_letter_max_consecutive: int = Field(
        default=20,
        ge=1,
        description="Dead-lettered messages in a row that stop the worker (a bug, not bad data).",
    )
    breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive payments failures that open the circuit."
    )
    breaker_reset_seconds: float = Field(
        default=10.0, gt=0, description="How long the circuit stays open before a trial call."
    )
    max_poll_records: int = Field(default=100, ge=1, description="Messages fetched per poll.")
    max_in_flight_messages: int = Field(
        default=64,
        ge=1,
        description="Messages processed at once (different orders; one order's in turn).",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
