"""`python -m perflab.gateway`: serves the public API with uvicorn."""

import uvicorn
from opentelemetry.instrumentation.redis import RedisInstrumentor

from perflab.common.logging import configure_logging
from perflab.common.telemetry import setup_tracing
from perflab.gateway.admin import create_admin_app, serve_admin_in_background
from perflab.gateway.app import create_app
from perflab.gateway.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.service_name, settings.log_level)
    shutdown_tracing = setup_tracing(settings.service_name, settings.tracing_enabled)
    RedisInstrumentor().instrument()
    stop_admin = None
    if settings.admin_port:
        stop_admin = serve_admin_in_background(
            create_admin_app(settings.faults_redis_url, settings.faults_key),
            settings.admin_host,
            settings.admin_port,
        )
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,  # keep our JSON logging
            timeout_graceful_shutdown=10,
            # Longer than clients' and load balancers' idle timeouts (httpx: 5 s): with equal
            # timeouts a client may reuse a connection the server is closing (ReadError).
            timeout_keep_alive=75,
        )
    finally:
        if stop_admin is not None:
            stop_admin()
        shutdown_tracing()


if __name__ == "__main__":
    main()
