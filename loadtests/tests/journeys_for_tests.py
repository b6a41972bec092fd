"""Journeys for the tests' scenarios, named in YAML as
``loadtests.tests.journeys_for_tests:<function>``."""

from __future__ import annotations

import time
from typing import Any


def slow(vu: Any) -> None:
    """One request to the slow stand-in's only endpoint."""
    vu.get("/slow", name="/slow")


def linger(vu: Any) -> None:
    """One quick request, then 3 s inside the iteration: a run of it drains for seconds."""
    vu.get("/api/products/1", name="/api/products/{id}")
    vu.sleep(3.0)


def burn(vu: Any) -> None:
    """40 ms of the generator's own CPU, then one quick request: at 50 iterations/s that asks
    for two cores of one Python process, which has one."""
    deadline = time.process_time() + 0.04
    while time.process_time() < deadline:
        pass
    vu.get("/api/products/1", name="/api/products/{id}")
