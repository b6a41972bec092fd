"""Stand-ins the load-test tests run against, each a small FastAPI app served by uvicorn in its own
process (see conftest.serve):

- ``gateway``: the gateway's public API, in memory, good enough for the journeys (orders turn
  PAID on the second read), so runs can be tested without the real stack;
- ``slow``: one endpoint with a fixed capacity (requests are served one at a time, each taking
  SERVICE_TIME), which counts the requests it receives and measures their real latency. An
  arrival rate above its capacity makes a queue grow, which only an open-loop generator sees.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Query, Response

from loadtests.journeys import CATEGORIES

CATALOG_SIZE = 10000  # as the real catalog, so the journeys never ask for a missing product

gateway = FastAPI()
_orders: dict[str, dict[str, Any]] = {}
_reads: dict[str, int] = {}
_ids = itertools.count(1)
_idempotency: dict[str, str] = {}


def _product(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "sku": f"SKU-{i:06d}",
        "name": f"Product {i}",
        "description": "",
        "category": CATEGORIES[i % len(CATEGORIES)],
        "price_cents": 100 + i,
        "currency": "EUR",
    }


@gateway.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@gateway.get("/api/products")
def list_products(
    category: str | None = None,
    page_size: int = Query(20, ge=1, le=100),
    page_token: str | None = None,
) -> Any:
    ids = [
        i
        for i in range(1, CATALOG_SIZE + 1)
        if category is None or CATEGORIES[i % len(CATEGORIES)] == category
    ]
    start = int(page_token or 0)
    page = ids[start : start + page_size]
    more = start + page_size < len(ids)
    return {
        "products": [_product(i) for i in page],
        "next_page_token": str(start + page_size) if more else None,
    }


@gateway.get("/api/products/{product_id}")
def get_product(product_id: int) -> Any:
    if not 1 <= product_id <= CATALOG_SIZE:
        raise HTTPException(404, "product not found")
    return _product(product_id)


@gateway.post("/api/orders", status_code=202)
def create_order(
    body: dict[str, Any], response: Response, idempotency_key: str | None = Header(None)
) -> Any:
    if idempotency_key and idempotency_key in _idempotency:
        order = _orders[_idempotency[idempotency_key]]
    else:
        order_id = str(next(_ids))
        total = sum(
            _product(it["product_id"])["price_cents"] * it["quantity"] for it in body["items"]
        )
        order = {
            "id": order_id,
            "customer_id": body["customer_id"],
            "status": "PENDING",
            "items": body["items"],
            "total_cents": total,
            "currency": "EUR",
            "created_at": time.time(),
            "updated_at": time.time(),
            "failure_reason": None,
        }
        _orders[order_id] = order
        if idempotency_key:
            _idempotency[idempotency_key] = order_id
    response.headers["Location"] = f"/api/orders/{order['id']}"
    return order


@gateway.get("/api/orders/{order_id}")
def get_order(order_id: str) -> Any:
    if order_id not in _orders:
        raise HTTPException(404, "order not found")
    _reads[order_id] = _reads.get(order_id, 0) + 1
    if _reads[order_id] >= 2:
        _orders[order_id]["status"] = "PAID"
    return _orders[order_id]


@gateway.get("/api/customers/{customer_id}/orders")
def customer_orders(customer_id: str, page_size: int = 20) -> Any:
    mine = [o for o in _orders.values() if o["customer_id"] == customer_id][::-1]
    return {"orders": mine[:page_size], "next_page_token": None}


slow = FastAPI()
SERVICE_TIME = float(os.environ.get("SLOW_SERVICE_TIME", "0.04"))
_lock = asyncio.Lock()
_arrivals: list[float] = []
_latencies: list[float] = []


@slow.get("/slow")
async def slow_endpoint() -> dict[str, bool]:
    arrived = time.monotonic()
    _arrivals.append(arrived)
    async with _lock:  # one request at a time: capacity is 1 / SERVICE_TIME requests per second
        await asyncio.sleep(SERVICE_TIME)
    _latencies.append(time.monotonic() - arrived)
    return {"ok": True}


@slow.get("/stats")
def slow_stats() -> dict[str, Any]:
    """Arrivals and real (server-side) latencies since the last reset."""
    return {"arrivals": _arrivals, "latencies": sorted(_latencies)}


@slow.post("/reset")
def slow_reset() -> dict[str, bool]:
    _arrivals.clear()
    _latencies.clear()
    return {"ok": True}
