"""The ceiling for `make bench`: a bare FastAPI endpoint, served like the gateway (one uvicorn
process, same event loop and HTTP parser), answering a product-sized JSON with no I/O."""

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()
PRODUCT = {
    "id": 42,
    "sku": "SKU-00000042",
    "name": "Sturdy Lamp 42",
    "description": "A sturdy lamp, perflab catalog item 42.",
    "category": "books",
    "price_cents": 1999,
    "currency": "EUR",
}


@app.get("/api/products/{product_id}")
async def product(product_id: int) -> dict[str, object]:
    return {**PRODUCT, "id": product_id}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
