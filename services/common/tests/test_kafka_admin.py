from perflab.common.kafka_admin import topic_names
from perflab.dev.processes import StackConfig


def test_topics_carry_the_prefix_and_a_dead_letter_twin() -> None:
    assert topic_names("t1.") == ["t1.orders.created", "t1.orders.created.dlq"]


def test_stack_env_points_every_service_at_its_own_ports() -> None:
    config = StackConfig(topic_prefix="p.", redis_prefix="r:")
    assert config.env("worker")["ORDERS_ADDR"].endswith(str(config.ports.orders))
    assert config.env("gateway")["REDIS_KEY_PREFIX"] == "r:"
    assert config.env("orders")["DATABASE_URL"].endswith("/orders")
    assert {config.env(s)["KAFKA_TOPIC_PREFIX"] for s in ("orders", "worker")} == {"p."}
