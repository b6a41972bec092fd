"""Journeys of the experiments' load phases (imported by the load-test runner by name,
`experiments.journeys:<function>`). Kept free of heavy imports: it runs inside Locust."""

from __future__ import annotations

import os
from typing import Any

HISTORY_CUSTOMERS = int(os.environ.get("EXPERIMENT_CUSTOMERS", "10000"))


def seeded_history(vu: Any) -> None:
    """The first page of the order history of one of the customers the db-index experiment
    seeded (`c0` .. `c<N-1>`, about 100 orders each), not the VU's own empty history."""
    customer = f"c{vu.rng.randrange(HISTORY_CUSTOMERS)}"
    response = vu.get(
        f"/api/customers/{customer}/orders?page_size=10", name="/api/customers/{id}/orders"
    )
    ok = response.status_code == 200
    vu.check("seeded history listed", ok)
