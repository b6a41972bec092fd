"""The deterministic catalog: product i is the same on every machine and every run."""

import random

CATEGORIES = (
    "books", "electronics", "home", "garden", "toys",
    "sports", "fashion", "beauty", "grocery", "automotive",
)  # fmt: skip

_ADJECTIVES = (
    "Sturdy", "Compact", "Classic", "Smart", "Deluxe", "Eco", "Rapid", "Silent", "Vintage",
    "Modern", "Handmade", "Portable", "Premium", "Basic", "Bright", "Quiet",
)  # fmt: skip
_NOUNS = (
    "Lamp", "Kettle", "Backpack", "Notebook", "Headphones", "Chair", "Blender", "Drill", "Mug",
    "Jacket", "Ball", "Puzzle", "Planter", "Brush", "Charger", "Cushion", "Tent", "Watch",
)  # fmt: skip


def product_row(product_id: int, seed: int = 42) -> dict[str, object]:
    rng = random.Random(seed * 1_000_003 + product_id)
    adjective, noun = rng.choice(_ADJECTIVES), rng.choice(_NOUNS)
    return {
        "id": product_id,
        "sku": f"SKU-{product_id:08d}",
        "name": f"{adjective} {noun} {product_id}",
        "description": f"A {adjective.lower()} {noun.lower()}, perflab catalog item {product_id}.",
        "category": CATEGORIES[product_id % len(CATEGORIES)],
        "price_cents": rng.randrange(199, 49_999),
        "currency": "EUR",
    }
