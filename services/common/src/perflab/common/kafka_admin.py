"""`python -m perflab.common.kafka_admin create-topics`: creates the perflab topics.

Idempotent: topics that exist are left as they are. Reads KAFKA_BOOTSTRAP_SERVERS and
KAFKA_TOPIC_PREFIX like the services do.
"""

import argparse
import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from perflab.common.logging import configure_logging
from perflab.common.settings import DEAD_LETTER_SUFFIX, ORDERS_CREATED_TOPIC, KafkaSettings

log = logging.getLogger(__name__)


def topic_names(prefix: str) -> list[str]:
    orders = f"{prefix}{ORDERS_CREATED_TOPIC}"
    return [orders, orders + DEAD_LETTER_SUFFIX]


async def create_topics(
    bootstrap_servers: str, prefix: str, partitions: int, replication_factor: int = 1
) -> list[str]:
    """Creates the missing topics; returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="perflab-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topic_names(prefix) if name not in existing]
        if missing:
            # Another replica's job may create them at the same moment.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(name, partitions, replication_factor) for name in missing]
                )
        return missing
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-topics", help="create the topics if they are missing")
    create.add_argument("--partitions", type=int, default=6)
    create.add_argument("--replication-factor", type=int, default=1)
    args = parser.parse_args()
    configure_logging("kafka-admin")
    settings = KafkaSettings()
    created = asyncio.run(
        create_topics(
            settings.kafka_bootstrap_servers,
            settings.kafka_topic_prefix,
            args.partitions,
            args.replication_factor,
        )
    )
    log.info("topics ready", extra={"topics_created": created})


if __name__ == "__main__":
    main()
