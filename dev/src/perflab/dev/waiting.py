"""Waiting in tests for a condition, never for a fixed time: `until` polls it up to a deadline
and, when the deadline passes, says what never happened and the last value it saw."""

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT = 30.0  # seconds: a bound on a hang on a busy machine, not a duration anything needs


async def until(
    condition: Callable[[], T | Awaitable[T]],
    what: str,
    *,
    timeout: float = TIMEOUT,
    every: float = 0.2,
) -> T:
    """Calls `condition` (plain or async) every `every` seconds until it returns something
    true, and returns that. After `timeout` seconds: TimeoutError naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise TimeoutError(f"waited {timeout:g}s for {what}; last seen: {value!r}")
        await asyncio.sleep(every)
