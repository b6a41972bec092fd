"""Journeys for the tests' scenarios, named in YAML as
``loadtests.tests.journeys_for_tests:<function>``."""

from __future__ import annotations

from typing import Any


def slow(vu: Any) -> None:
    """One request to the slow stand-in's only endpoint."""
    vu.get("/slow", name="/slow")
