"""The isolated stack's life cycle, with the infrastructure and the services faked."""

import logging
from pathlib import Path

import pytest

from perflab.dev import isolated
from perflab.dev.processes import Infra, ServiceProcesses


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the harness did, in order; dropping the orders database and deleting the topics
    fail, as after a PostgreSQL or Kafka restart."""
    done: list[str] = []

    def sql(infra: Infra, statement: str) -> None:
        done.append(statement.split(" WITH")[0])
        if statement.startswith("DROP") and "_orders" in statement:
            raise OSError("connection refused")

    async def create_topics(bootstrap: str, prefix: str, partitions: int) -> list[str]:
        done.append(f"create topics {prefix}* ({partitions} partitions)")
        return []

    async def delete_topics(infra: Infra, prefix: str) -> None:
        done.append(f"delete topics {prefix}*")
        raise ConnectionError("Kafka is restarting")

    def forget(infra: Infra, prefix: str) -> int:
        done.append(f"forget {prefix}*")
        return 0

    monkeypatch.setattr(isolated, "_sql", sql)
    monkeypatch.setattr(isolated, "upgrade", lambda migrations, url: done.append(migrations))
    monkeypatch.setattr(isolated, "create_topics", create_topics)
    monkeypatch.setattr(isolated, "delete_topics", delete_topics)
    monkeypatch.setattr(isolated, "forget_redis_prefix", forget)
    monkeypatch.setattr(
        ServiceProcesses, "run_module", lambda self, module, *a, **kw: done.append(module)
    )
    monkeypatch.setattr(ServiceProcesses, "start", lambda self, s: done.append(f"start {s}"))
    monkeypatch.setattr(ServiceProcesses, "wait_ready", lambda self, s: None)
    monkeypatch.setattr(ServiceProcesses, "stop_all", lambda self: done.append("stop services"))
    return done


def _names(calls: list[str]) -> dict[str, str]:
    orders_db = next(c for c in calls if c.startswith("CREATE")).split('"')[1]
    tag = orders_db.removesuffix("_orders")
    return {"tag": tag, "orders": orders_db, "payments": f"{tag}_payments"}


def test_sets_up_in_order_and_removes_everything(calls: list[str], tmp_path: Path) -> None:
    with isolated.isolated_stack(tmp_path, name="t", infra=Infra(), products=7) as stack:
        names = _names(calls)
        assert stack.config.orders_db == names["orders"]
        assert stack.config.payments_db == names["payments"]
        assert stack.config.topic_prefix == f"{names['tag']}."
        assert stack.config.redis_prefix == f"{names['tag']}:"
        started = list(calls)
    tag = names["tag"]
    assert tag.startswith("t_")
    assert started == [
        f'CREATE DATABASE "{tag}_orders"',
        "perflab.orders:migrations",
        f'CREATE DATABASE "{tag}_payments"',
        "perflab.payments:migrations",
        f"create topics {tag}.* (3 partitions)",
        "perflab.orders.seed",
        "start payments",
        "start orders",
        "start worker",
        "start gateway",
    ]
    assert calls[len(started) :] == [
        "stop services",
        f"forget {tag}:*",
        f"delete topics {tag}.*",
        f'DROP DATABASE IF EXISTS "{tag}_payments"',
        f'DROP DATABASE IF EXISTS "{tag}_orders"',
    ]


def test_cleanup_failures_are_logged_not_swallowed_nor_raised(
    calls: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="perflab.dev.isolated")
    with (
        pytest.raises(RuntimeError, match="the test failed"),
        isolated.isolated_stack(tmp_path, infra=Infra()),
    ):
        raise RuntimeError("the test failed")  # the body's error is the one that propagates
    tag = _names(calls)["tag"]
    warnings = [
        (r.getMessage(), type(r.exc_info[1]).__name__) for r in caplog.records if r.exc_info
    ]
    assert warnings == [
        (
            f"isolated stack: could not delete the topics {tag}.*; remove it by hand",
            "ConnectionError",
        ),
        (f"isolated stack: could not drop database {tag}_orders; remove it by hand", "OSError"),
    ]


def test_without_the_worker_no_topics(calls: list[str], tmp_path: Path) -> None:
    with isolated.isolated_stack(tmp_path, infra=Infra(), services=("orders", "gateway")):
        pass
    assert [c for c in calls if "topics" in c] == []
    assert [c for c in calls if c.startswith("start")] == ["start orders", "start gateway"]


def test_a_failed_setup_removes_what_it_created(calls: list[str], tmp_path: Path) -> None:
    def seed_fails(self: ServiceProcesses, module: str, *args: str, quiet: bool = False) -> None:
        raise RuntimeError("seed failed")

    with (
        pytest.MonkeyPatch.context() as patch,
        pytest.raises(RuntimeError, match="seed failed"),
    ):
        patch.setattr(ServiceProcesses, "run_module", seed_fails)
        with isolated.isolated_stack(tmp_path, infra=Infra()):
            pytest.fail("the body must not run")
    tag = _names(calls)["tag"]
    assert "stop services" not in calls
    assert calls[-4:] == [
        f"forget {tag}:*",
        f"delete topics {tag}.*",
        f'DROP DATABASE IF EXISTS "{tag}_payments"',
        f'DROP DATABASE IF EXISTS "{tag}_orders"',
    ]
