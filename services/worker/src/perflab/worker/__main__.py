"""`python -m perflab.worker`: consumes order events and has the orders paid."""

import asyncio
import logging
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

from perflab.common.faults import FaultFlags
from perflab.common.grpc import insecure_channel
from perflab.common.logging import configure_logging
from perflab.common.metrics import serve_metrics
from perflab.common.settings import DEAD_LETTER_SUFFIX, ORDERS_CREATED_TOPIC
from perflab.common.telemetry import setup_tracing
from perflab.contracts.orders.v1 import orders_pb2_grpc
from perflab.contracts.payments.v1 import payments_pb2_grpc
from perflab.worker.consumer import OrderEventsConsumer, RetryPolicy, wait_for_topic
from perflab.worker.faults import DelayedFlow
from perflab.worker.payment_flow import PaymentFlow, payments_breaker
from perflab.worker.settings import Settings, get_settings

log = logging.getLogger("perflab.worker")


async def run(settings: Settings, state: dict[str, bool]) -> None:
    topic = settings.topic(ORDERS_CREATED_TOPIC)
    faults = FaultFlags(settings)
    await faults.start()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group,
        client_id=settings.service_name,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.max_poll_records,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.service_name}-dlq",
        enable_idempotence=True,
        acks="all",
    )
    orders_channel = insecure_channel(settings.orders_addr)
    payments_channel = insecure_channel(settings.payments_addr)
    worker = OrderEventsConsumer(
        consumer,
        producer,
        DelayedFlow(
            PaymentFlow(
                orders_pb2_grpc.OrdersServiceStub(orders_channel),
                payments_pb2_grpc.PaymentsServiceStub(payments_channel),
                settings.rpc_timeout_seconds,
                payments_breaker(settings.breaker_failures, settings.breaker_reset_seconds),
            ),
            faults,
        ),
        topic=topic,
        dead_letter_topic=topic + DEAD_LETTER_SUFFIX,
        retry=RetryPolicy(
            settings.max_attempts,
            settings.retry_backoff_seconds,
            settings.retry_backoff_max_seconds,
            settings.retry_pause_seconds,
        ),
        commit_interval=settings.commit_interval_seconds,
        dead_letter_max_consecutive=settings.dead_letter_max_consecutive,
        max_in_flight=settings.max_in_flight_messages,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)

    await producer.start()
    await consumer.start()
    try:
        if await wait_for_topic(consumer, topic, lambda: worker.stopping):
            state["ready"] = True
            log.info("consuming", extra={"topic": topic, "group": settings.consumer_group})
            await worker.run()
    finally:
        state["ready"] = False
        await consumer.stop()
        await producer.stop()
        await orders_channel.close()
        await payments_channel.close()
        await faults.stop()


def main() -> None:
    settings = get_settings()
    configure_logging(settings.service_name, settings.log_level)
    shutdown_tracing = setup_tracing(settings.service_name, settings.tracing_enabled)
    AIOKafkaInstrumentor().instrument()
    state = {"ready": False}
    serve_metrics(
        settings.http_port,
        settings.http_host,
        {"/healthz": lambda: True, "/readyz": lambda: state["ready"]},
    )
    try:
        asyncio.run(run(settings, state))
    finally:
        shutdown_tracing()
        log.info("stopped")


if __name__ == "__main__":
    main()
