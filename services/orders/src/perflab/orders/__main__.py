"""`python -m perflab.orders`: the orders gRPC server and its outbox relay."""

import asyncio
import logging

import grpc
from aiokafka import AIOKafkaProducer
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

from perflab.common.db import create_engine, sessionmaker, unavailable_reason
from perflab.common.faults import FaultFlags
from perflab.common.grpc import insecure_channel, serve
from perflab.common.logging import configure_logging
from perflab.common.metrics import serve_metrics
from perflab.common.settings import ORDERS_CREATED_TOPIC
from perflab.common.telemetry import setup_tracing
from perflab.contracts.orders.v1 import orders_pb2, orders_pb2_grpc
from perflab.contracts.payments.v1 import payments_pb2_grpc
from perflab.orders.faults import PoisoningProducer
from perflab.orders.outbox import OutboxRelay
from perflab.orders.payment import CHARGE_RETRY_POLICY, SyncPayer
from perflab.orders.repository import Limits, Repository
from perflab.orders.servicer import OrdersServicer
from perflab.orders.settings import Settings, get_settings

log = logging.getLogger("perflab.orders")


async def run(settings: Settings) -> None:
    engine = create_engine(settings)
    sessions = sessionmaker(engine)
    faults = FaultFlags(settings)
    await faults.start()
    repository = Repository(
        sessions,
        topic=settings.topic(ORDERS_CREATED_TOPIC),
        limits=Limits(settings.max_order_items, settings.max_item_quantity, settings.max_page_size),
        faults=faults,
    )
    relay = OutboxRelay(
        sessions,
        lambda: PoisoningProducer(
            AIOKafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                client_id=settings.service_name,
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
            ),
            faults,
        ),
        batch_size=settings.outbox_batch_size,
        poll_interval=settings.outbox_poll_interval_seconds,
    )
    relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
    payments_channel = None
    payer = None
    if settings.payment_mode == "sync":
        payments_channel = insecure_channel(settings.payments_addr, CHARGE_RETRY_POLICY)
        payer = SyncPayer(
            payments_pb2_grpc.PaymentsServiceStub(payments_channel),
            repository,
            settings.payment_timeout_seconds,
        )
    log.info("payment mode %s", settings.payment_mode)

    def register(server: grpc.aio.Server) -> list[str]:
        orders_pb2_grpc.add_OrdersServiceServicer_to_server(
            OrdersServicer(repository, relay.notify, payer), server
        )
        return [orders_pb2.DESCRIPTOR.services_by_name["OrdersService"].full_name]

    async def on_stop() -> None:
        await relay.stop()
        await relay_task
        await faults.stop()
        if payments_channel is not None:
            await payments_channel.close()
        await engine.dispose()

    await serve(
        register,
        settings.grpc_host,
        settings.grpc_port,
        settings.shutdown_grace_seconds,
        on_stop,
        outage_reason=unavailable_reason,
    )


def main() -> None:
    settings = get_settings()
    configure_logging(settings.service_name, settings.log_level)
    shutdown_tracing = setup_tracing(settings.service_name, settings.tracing_enabled)
    AIOKafkaInstrumentor().instrument()
    serve_metrics(settings.metrics_port, settings.grpc_host)
    try:
        asyncio.run(run(settings))
    finally:
        shutdown_tracing()
        log.info("stopped")


if __name__ == "__main__":
    main()
