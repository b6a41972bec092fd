"""Journeys of the experiments' load phases (imported by the load-test runner by name,
`experiments.journeys:<function>`). Kept free of heavy imports: it runs inside Locust."""

from __future__ import annotations

import os
import uuid
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


def place_order(vu: Any) -> None:
    """One order of 1 to 3 (Zipf-popular) products with an idempotency key, nothing else: the
    write path alone. The answer says whether the order is already final (PAYMENT_MODE=sync)."""
    ids = {vu.catalog.product_id(vu.rng) for _ in range(vu.rng.choice((1, 1, 2, 3)))}
    order = {
        "customer_id": vu.customer_id,
        "items": [{"product_id": pid, "quantity": vu.rng.randint(1, 3)} for pid in sorted(ids)],
    }
    response = vu.post(
        "/api/orders", name="/api/orders", json=order, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    vu.check("order accepted", response.status_code == 202)
