"""The ceilings for `make bench`: a bare FastAPI endpoint, served like the gateway (one uvicorn
process, same event loop and HTTP parser), answering a product-sized JSON with no I/O; with
`--redis URL`, the same endpoint after one redis-py GET (the least a cached read can do)."""

import argparse

import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis

PRODUCT = {
    "id": 42,
    "sku": "SKU-00000042",
    "name": "Sturdy Lamp 42",
    "description": "A sturdy lamp, perflab catalog item 42.",
    "category": "books",
    "price_cents": 1999,
    "currency": "EUR",
}


def create_app(redis_url: str | None) -> FastAPI:
    app = FastAPI()
    redis = Redis.from_url(redis_url) if redis_url else None

    @app.get("/api/products/{product_id}")
    async def product(product_id: int) -> dict[str, object]:
        if redis is not None:
            await redis.get(f"cache:products:{product_id}")
        return {**PRODUCT, "id": product_id}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--redis", help="one GET per request from this Redis")
    args = parser.parse_args()
    uvicorn.run(create_app(args.redis), host="127.0.0.1", port=args.port, log_level="warning")
