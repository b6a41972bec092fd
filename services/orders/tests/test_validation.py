import pytest

from perflab.orders.catalog import CATEGORIES, product_row
from perflab.orders.repository import InvalidArgument, Limits, NewItem, validate_new_order

LIMITS = Limits(max_items=3, max_quantity=10, max_page_size=100)


@pytest.mark.parametrize(
    ("customer", "items", "reason"),
    [
        ("", [NewItem(1, 1)], "customer_id"),
        ("bad id!", [NewItem(1, 1)], "customer_id"),
        ("c1", [], "at least one item"),
        ("c1", [NewItem(i, 1) for i in range(1, 5)], "at most 3"),
        ("c1", [NewItem(0, 1)], "positive"),
        ("c1", [NewItem(1, 0)], "between 1 and 10"),
        ("c1", [NewItem(1, 11)], "between 1 and 10"),
        ("c1", [NewItem(1, 1), NewItem(1, 2)], "appears twice"),
    ],
)
def test_invalid_orders_are_rejected_with_a_reason(
    customer: str, items: list[NewItem], reason: str
) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        validate_new_order(customer, items, LIMITS)


def test_a_valid_order_passes() -> None:
    validate_new_order("c-1_x", [NewItem(1, 10), NewItem(2, 1)], LIMITS)


def test_catalog_is_deterministic_and_spread_over_categories() -> None:
    assert product_row(7) == product_row(7)
    assert product_row(7) != product_row(7, seed=1)
    assert {product_row(i)["category"] for i in range(1, 11)} == set(CATEGORIES)
    assert product_row(3)["category"] == CATEGORIES[3]
