"""The journeys' copy of what the services define (load tests only speak HTTP, so they cannot
import it): it must agree with the services."""

from loadtests import journeys
from perflab.orders import catalog


def test_the_journeys_browse_the_categories_of_the_catalog() -> None:
    assert journeys.CATEGORIES == catalog.CATEGORIES
