"""`until`: the polling every test waits with."""

import pytest

from perflab.dev.waiting import until


async def test_until_returns_the_first_true_value_of_a_plain_or_async_condition() -> None:
    values = iter([0, None, 7, 8])
    assert await until(lambda: next(values), "a value", every=0) == 7

    answers = iter(["", "ready"])

    async def check() -> str:
        return next(answers)

    assert await until(check, "an answer", every=0) == "ready"


async def test_until_names_what_never_happened_and_the_last_value() -> None:
    with pytest.raises(TimeoutError, match=r"waited 0s for a dead letter; last seen: \[\]"):
        await until(list, "a dead letter", timeout=0)
