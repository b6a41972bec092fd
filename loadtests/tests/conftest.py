"""Fixtures of the load-test tests; the helpers they use live in helpers.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadtests.tests.helpers import serve


@pytest.fixture(scope="session")
def fake_gateway() -> Iterator[str]:
    """The gateway's public API in memory (see fake_gateway.py), for runs without the real stack."""
    with serve("loadtests.tests.fake_gateway:gateway") as url:
        yield url
