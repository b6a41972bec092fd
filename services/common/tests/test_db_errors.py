import pytest
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from perflab.common.db import unavailable_reason


class Orig(Exception):
    def __init__(self, sqlstate: str):
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (PoolTimeout("QueuePool limit reached"), "pool exhausted"),
        (DBAPIError("SELECT 1", {}, Orig("57014")), "timed out"),
        (DBAPIError("SELECT 1", {}, Orig("57P01")), "unavailable"),
        (DBAPIError("SELECT 1", {}, Orig("08006")), "unavailable"),
        (InterfaceError("SELECT 1", {}, Orig("")), "unavailable"),
        (ConnectionRefusedError(), "unreachable"),
    ],
)
def test_outages_are_retryable_with_a_reason(exc: Exception, reason: str) -> None:
    assert reason in (unavailable_reason(exc) or "")


@pytest.mark.parametrize(
    "exc", [DBAPIError("INSERT", {}, Orig("23505")), ValueError("bug"), KeyError("x")]
)
def test_other_errors_are_not_disguised_as_outages(exc: Exception) -> None:
    assert unavailable_reason(exc) is None


def test_asyncpg_errors_raised_while_connecting_are_outages() -> None:
    import asyncpg

    assert unavailable_reason(asyncpg.exceptions.CannotConnectNowError("starting up")) == (
        "database unavailable"
    )
    assert unavailable_reason(asyncpg.exceptions.InterfaceError("connection is closed")) == (
        "database unavailable"
    )
    assert unavailable_reason(asyncpg.exceptions.UniqueViolationError("dup")) is None
