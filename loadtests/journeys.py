"""User journeys: what one iteration of a virtual user does against the gateway's HTTP API.

A journey is a function taking the virtual user (``VU``) and running one visit: a handful of
requests with think times between them. Requests are named by their route template
(``/api/products/{id}``) so the statistics group them per endpoint. Scenarios pick journeys by
weight; a scenario can also name its own journey as ``package.module:function``.

Data never collides between virtual users: each has its own customer id and rate-limit client
id, and every order carries a fresh idempotency key.
"""

from __future__ import annotations

import bisect
import itertools
import random
import uuid
from collections.abc import Callable
from typing import Any, Protocol

# The catalog's categories (perflab.orders.catalog). Load tests only speak HTTP and their image
# holds no service code, so this is a copy; test_journeys.py checks that it agrees.
CATEGORIES = (
    "books", "electronics", "home", "garden", "toys",
    "sports", "fashion", "beauty", "grocery", "automotive",
)  # fmt: skip
FINAL_ORDER_STATUSES = frozenset({"PAID", "PAYMENT_FAILED"})
ORDER_POLL_INTERVAL = 0.5  # seconds between polls of a pending order
ORDER_POLL_TIMEOUT = 15.0  # seconds before an order that is still pending counts as a failed check


class Response(Protocol):
    status_code: int

    def json(self) -> Any: ...


class VU(Protocol):
    """What a journey may use of its virtual user."""

    rng: random.Random
    customer_id: str
    catalog: Catalog

    def get(self, path: str, name: str) -> Response: ...
    def post(
        self, path: str, name: str, json: Any, headers: dict[str, str] | None = None
    ) -> Response: ...
    def think(self) -> None: ...
    def sleep(self, seconds: float) -> None: ...
    def check(self, name: str, ok: bool) -> bool: ...


class Catalog:
    """Which products and categories visitors ask for: Zipf-distributed, so a few products are
    popular (a cache has something to do) and the long tail still gets traffic."""

    def __init__(self, size: int, skew: float = 1.0) -> None:
        self.size = size
        self._cumulative = list(itertools.accumulate(1 / rank**skew for rank in range(1, size + 1)))
        self._category_cumulative = list(
            itertools.accumulate(1 / rank for rank in range(1, len(CATEGORIES) + 1))
        )

    def product_id(self, rng: random.Random) -> int:
        """A product id in 1..size; id 1 is the most popular."""
        point = rng.random() * self._cumulative[-1]
        return bisect.bisect_left(self._cumulative, point) + 1

    def category(self, rng: random.Random) -> str:
        point = rng.random() * self._category_cumulative[-1]
        return CATEGORIES[bisect.bisect_left(self._category_cumulative, point)]


def _json(response: Response) -> Any:
    try:
        return response.json() if 200 <= response.status_code < 300 else None
    except (
        Exception
    ):  # a failed request has no body; the request itself is already counted as failed
        return None


def browse(vu: VU) -> None:
    """List a category (sometimes a second page), then look at one or two listed products."""
    category = vu.catalog.category(vu.rng)
    page = _json(vu.get(f"/api/products?category={category}&page_size=20", name="/api/products"))
    products = (page or {}).get("products") or []
    vu.check("product list is not empty", bool(products))
    token = (page or {}).get("next_page_token")
    if token and vu.rng.random() < 0.3:
        vu.think()
        page = _json(
            vu.get(
                f"/api/products?category={category}&page_size=20&page_token={token}",
                name="/api/products",
            )
        )
        products = (page or {}).get("products") or products
    for product in vu.rng.sample(products, k=min(len(products), vu.rng.choice((1, 2)))):
        vu.think()
        body = _json(vu.get(f"/api/products/{product['id']}", name="/api/products/{id}"))
        vu.check("product matches its listing", bool(body) and body.get("id") == product["id"])


def product(vu: VU) -> None:
    """Open a (popular) product page directly, as from a search engine or a link."""
    product_id = vu.catalog.product_id(vu.rng)
    body = _json(vu.get(f"/api/products/{product_id}", name="/api/products/{id}"))
    vu.check("product found", bool(body) and body.get("id") == product_id)


def buy(vu: VU) -> None:
    """Look at a product, order it (and maybe more) with an idempotency key, poll until final."""
    first = vu.catalog.product_id(vu.rng)
    _json(vu.get(f"/api/products/{first}", name="/api/products/{id}"))
    vu.think()
    ids = {first} | {vu.catalog.product_id(vu.rng) for _ in range(vu.rng.choice((0, 0, 1, 2)))}
    order = {
        "customer_id": vu.customer_id,
        "items": [{"product_id": pid, "quantity": vu.rng.randint(1, 3)} for pid in sorted(ids)],
    }
    response = vu.post(
        "/api/orders", name="/api/orders", json=order, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    created = _json(response)
    if not vu.check(
        "order accepted", response.status_code == 202 and bool(created) and "id" in created
    ):
        return
    status = created.get("status")
    waited = 0.0
    while status not in FINAL_ORDER_STATUSES and waited < ORDER_POLL_TIMEOUT:
        vu.sleep(ORDER_POLL_INTERVAL)
        waited += ORDER_POLL_INTERVAL
        body = _json(vu.get(f"/api/orders/{created['id']}", name="/api/orders/{id}"))
        status = (body or {}).get("status", status)
    vu.check("order reached a final status", status in FINAL_ORDER_STATUSES)


def history(vu: VU) -> None:
    """Look at one's own order history."""
    body = _json(
        vu.get(
            f"/api/customers/{vu.customer_id}/orders?page_size=10",
            name="/api/customers/{id}/orders",
        )
    )
    vu.check("order history listed", bool(body) and isinstance(body.get("orders"), list))


BUILTIN: dict[str, Callable[[VU], None]] = {
    "browse": browse,
    "product": product,
    "buy": buy,
    "history": history,
}
