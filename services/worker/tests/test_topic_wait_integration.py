"""The worker started before its topic exists (in the cluster a Helm hook Job creates the
topics after the Deployments start) gets its partitions as soon as the topic is created, not
at the consumer's next metadata refresh five minutes later. Real Kafka."""

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer

from perflab.common.kafka_admin import create_topics
from perflab.common.settings import ORDERS_CREATED_TOPIC
from perflab.dev.infra import delete_topics, unique
from perflab.dev.processes import Infra
from perflab.worker.consumer import wait_for_topic

pytestmark = pytest.mark.integration


async def test_partitions_are_assigned_soon_after_the_topic_is_created(infra: Infra) -> None:
    prefix = unique() + "."
    topic = prefix + ORDERS_CREATED_TOPIC
    consumer = AIOKafkaConsumer(
        bootstrap_servers=infra.kafka_bootstrap, group_id=unique("topic-wait-")
    )
    await consumer.start()
    try:
        waiting = asyncio.create_task(wait_for_topic(consumer, topic, lambda: False, 0.2))
        await asyncio.sleep(2)
        assert not waiting.done()  # no topic, no start
        await create_topics(infra.kafka_bootstrap, prefix, partitions=2)
        created = time.monotonic()
        assert await asyncio.wait_for(waiting, 10)
        consumer.subscribe([topic])
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
            assert time.monotonic() - created < 30, "no partitions 30 s after the topic came"
        assert {tp.partition for tp in consumer.assignment()} == {0, 1}
    finally:
        await consumer.stop()
        await delete_topics(infra, prefix)
