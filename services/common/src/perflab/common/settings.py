"""Settings every service shares. Each service extends `ServiceSettings` with its own fields.

Values come from environment variables (no prefix, case-insensitive) so the same names work in
`make local`, the tests and the Helm chart. OpenTelemetry is configured through its standard
`OTEL_*` variables (endpoint, sampler), which the SDK reads itself.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where everything listens on a developer's machine (`make local`, the tests): the defaults of
# the settings below and of the dev runner (perflab.dev.processes) come from here; in a cluster
# the chart sets every address. All below Linux's ephemeral range (32768), see
# perflab.dev.processes.free_port.
LOCAL_HOST = "127.0.0.1"
LOCAL_GATEWAY_PORT = 18080
LOCAL_ADMIN_PORT = 18081
LOCAL_ORDERS_PORT = 15051
LOCAL_PAYMENTS_PORT = 15052
LOCAL_POSTGRES_PORT = 15432
LOCAL_REDIS_PORT = 16379
LOCAL_KAFKA_PORT = 19092
LOCAL_REDIS_URL = f"redis://{LOCAL_HOST}:{LOCAL_REDIS_PORT}/0"


def local_database_url(database: str) -> str:
    return f"postgresql+asyncpg://perflab@{LOCAL_HOST}:{LOCAL_POSTGRES_PORT}/{database}"


class EnvSettings(BaseSettings):
    """The base of every settings mixin: read from the environment, which every service shares
    with the others, so variables meant for another service are ignored."""

    model_config = SettingsConfigDict(extra="ignore")


class ServiceSettings(EnvSettings):
    service_name: str = Field(description="Name in traces, logs and metrics.")
    log_level: str = Field(default="INFO", description="Python logging level.")
    tracing_enabled: bool = Field(
        default=True, description="Export spans over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)."
    )


class DatabaseSettings(EnvSettings):
    database_url: str = Field(
        default=local_database_url("perflab"),
        description="SQLAlchemy async URL (asyncpg driver).",
    )
    db_pool_size: int = Field(default=10, ge=1, description="Connections kept open.")
    db_max_overflow: int = Field(default=10, ge=0, description="Extra connections under load.")
    db_pool_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long a request waits for a pooled connection."
    )
    db_statement_timeout_ms: int = Field(
        default=5000, ge=0, description="PostgreSQL statement_timeout per connection; 0 = none."
    )


class GrpcServerSettings(EnvSettings):
    grpc_host: str = Field(default="127.0.0.1", description="Interface the gRPC server binds.")
    grpc_port: int = Field(default=LOCAL_ORDERS_PORT, description="gRPC port.")
    metrics_port: int = Field(default=9464, description="HTTP port for /metrics.")
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="In-flight RPCs get this long to finish on SIGTERM."
    )


class KafkaSettings(EnvSettings):
    kafka_bootstrap_servers: str = Field(default=f"{LOCAL_HOST}:{LOCAL_KAFKA_PORT}")
    kafka_topic_prefix: str = Field(
        default="", description="Prepended to every topic name (isolates test runs)."
    )

    def topic(self, name: str) -> str:
        return f"{self.kafka_topic_prefix}{name}"


ORDERS_CREATED_TOPIC = "orders.created"
DEAD_LETTER_SUFFIX = ".dlq"
