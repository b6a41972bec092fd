"""`python -m perflab.payments`: the payments gRPC server."""

import asyncio
import logging

import grpc

from perflab.common.db import create_engine, sessionmaker, unavailable_reason
from perflab.common.faults import FaultFlags
from perflab.common.grpc import serve
from perflab.common.logging import configure_logging
from perflab.common.metrics import serve_metrics
from perflab.common.telemetry import setup_tracing
from perflab.contracts.payments.v1 import payments_pb2, payments_pb2_grpc
from perflab.payments.faults import InjectedFaults
from perflab.payments.ledger import Ledger
from perflab.payments.processor import SimulatedProcessor
from perflab.payments.servicer import PaymentsServicer
from perflab.payments.settings import Settings, get_settings

log = logging.getLogger("perflab.payments")


async def run(settings: Settings) -> None:
    engine = create_engine(settings)
    faults = FaultFlags(settings)
    await faults.start()
    ledger = Ledger(
        sessionmaker(engine),
        SimulatedProcessor(
            settings.payment_latency_median_ms,
            settings.payment_latency_p99_ms,
            settings.payment_decline_rate,
        ),
        settings.processing_takeover_seconds,
    )

    def register(server: grpc.aio.Server) -> list[str]:
        payments_pb2_grpc.add_PaymentsServiceServicer_to_server(PaymentsServicer(ledger), server)
        return [payments_pb2.DESCRIPTOR.services_by_name["PaymentsService"].full_name]

    async def on_stop() -> None:
        await faults.stop()
        await engine.dispose()

    await serve(
        register,
        settings.grpc_host,
        settings.grpc_port,
        settings.shutdown_grace_seconds,
        on_stop,
        outage_reason=unavailable_reason,
        interceptors=[InjectedFaults(faults)],
    )


def main() -> None:
    settings = get_settings()
    configure_logging(settings.service_name, settings.log_level)
    shutdown_tracing = setup_tracing(settings.service_name, settings.tracing_enabled)
    serve_metrics(settings.metrics_port, settings.grpc_host)
    try:
        asyncio.run(run(settings))
    finally:
        shutdown_tracing()
        log.info("stopped")


if __name__ == "__main__":
    main()
