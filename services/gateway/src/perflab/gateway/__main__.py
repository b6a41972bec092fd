"""`python -m perflab.gateway`: serves the public API with uvicorn."""

import uvicorn
from opentelemetry.instrumentation.redis import RedisInstrumentor

from perflab.common.logging import configure_logging
from perflab.common.telemetry import setup_tracing
from perflab.gateway.app import create_app
from perflab.gateway.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.service_name, settings.log_level)
    shutdown_tracing = setup_tracing(settings.service_name, settings.tracing_enabled)
    RedisInstrumentor().instrument()
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,  # keep our JSON logging
            timeout_graceful_shutdown=10,
        )
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
