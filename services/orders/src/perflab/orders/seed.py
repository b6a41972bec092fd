"""`python -m perflab.orders.seed --products N`: loads the deterministic catalog.

Idempotent: products that exist are left alone, missing ones are added. Rows go through
PostgreSQL's COPY into a temporary table, so a million products take seconds, not minutes.
"""

import argparse
import asyncio
import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from perflab.common.logging import configure_logging
from perflab.orders.catalog import product_row
from perflab.orders.settings import get_settings

log = logging.getLogger("perflab.orders.seed")
COLUMNS = ("id", "sku", "name", "description", "category", "price_cents", "currency")
CHUNK = 50_000


async def seed(database_url: str, products: int, seed_value: int = 42) -> int:
    """Returns how many products were added."""
    engine = create_async_engine(database_url)
    added = 0
    try:
        async with engine.begin() as conn:
            present = await conn.scalar(
                text("SELECT count(*) FROM products WHERE id BETWEEN 1 AND :n"), {"n": products}
            )
            if present == products:
                return 0
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.execute("CREATE TEMP TABLE seed_products (LIKE products) ON COMMIT DROP")
            started = time.monotonic()
            for low in range(1, products + 1, CHUNK):
                high = min(low + CHUNK, products + 1)
                records = [
                    tuple(product_row(i, seed_value)[c] for c in COLUMNS) for i in range(low, high)
                ]
                await raw.copy_records_to_table("seed_products", records=records, columns=COLUMNS)
                log.info("seed progress", extra={"rows": high - 1, "of": products})
            status = await raw.execute(
                "INSERT INTO products SELECT * FROM seed_products ON CONFLICT (id) DO NOTHING"
            )
            added = int(status.split()[-1])
            await raw.execute("ANALYZE products")
            log.info(
                "seeded catalog",
                extra={"added": added, "seconds": round(time.monotonic() - started, 1)},
            )
    finally:
        await engine.dispose()
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000, help="catalog size (default 10000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed of names and prices")
    args = parser.parse_args()
    settings = get_settings()
    configure_logging("orders-seed", settings.log_level)
    asyncio.run(seed(settings.database_url, args.products, args.seed))


if __name__ == "__main__":
    main()
