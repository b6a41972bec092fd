"""Order and catalog operations on PostgreSQL. Raises `DomainError` subclasses for outcomes
the caller must map to a status (the gRPC layer turns them into status codes)."""

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import propagate
from prometheus_client import Counter, Histogram
from sqlalchemy import Table, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from perflab.common.db import single_statements
from perflab.common.faults import FaultFlags
from perflab.common.pagination import InvalidPageToken, decode_token, encode_token
from perflab.contracts.events.v1 import events_pb2
from perflab.orders.models import Order, OrderItem, OutboxEvent, Product

ORDERS_CREATED = Counter("orders_created_total", "Orders created (idempotent replays excluded).")
ORDERS_COMPLETED = Counter(
    "orders_completed_total", "Orders that reached a final status.", ["status"]
)
ORDER_COMPLETION = Histogram(
    "order_completion_duration_seconds",
    "Time from order creation to its final status (the whole async pipeline).",
    ["status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

for _status in ("PAID", "PAYMENT_FAILED"):  # the series exist before the first order completes
    ORDERS_COMPLETED.labels(_status)
    ORDER_COMPLETION.labels(_status)

CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PENDING, PAID, PAYMENT_FAILED = "PENDING", "PAID", "PAYMENT_FAILED"


class _LostRace(Exception):
    """Another transaction inserted an order with the same idempotency key first."""


class DomainError(Exception):
    pass


class InvalidArgument(DomainError):
    pass


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


@dataclass(frozen=True)
class NewItem:
    product_id: int
    quantity: int


@dataclass(frozen=True)
class Limits:
    max_items: int
    max_quantity: int
    max_page_size: int


def timestamp(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def _page_size(requested: int, limits: Limits, default: int = 20) -> int:
    if requested < 0 or requested > limits.max_page_size:
        raise InvalidArgument(f"page_size must be between 1 and {limits.max_page_size}")
    return requested or default


def _parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidArgument(f"{what} is not a UUID: {_quote(value)}") from exc


def _quote(value: str) -> str:
    """A value for an error message, cut short: the message must fit gRPC's metadata limit."""
    return repr(value[:64] + ("..." if len(value) > 64 else ""))


def _text(value: str, what: str, max_length: int) -> str:
    """PostgreSQL text cannot hold NUL, and columns have lengths: refuse both up front."""
    if "\x00" in value:
        raise InvalidArgument(f"{what} must not contain NUL characters")
    if len(value) > max_length:
        raise InvalidArgument(f"{what} is longer than {max_length} characters")
    return value


def validate_new_order(customer_id: str, items: Sequence[NewItem], limits: Limits) -> None:
    if not CUSTOMER_ID.match(customer_id):
        raise InvalidArgument("customer_id must be 1-64 characters of A-Z, a-z, 0-9, _ and -")
    if not items:
        raise InvalidArgument("an order needs at least one item")
    if len(items) > limits.max_items:
        raise InvalidArgument(f"an order holds at most {limits.max_items} items")
    seen: set[int] = set()
    for item in items:
        if item.product_id <= 0:
            raise InvalidArgument(f"product_id must be positive, got {item.product_id}")
        if not 1 <= item.quantity <= limits.max_quantity:
            raise InvalidArgument(
                f"quantity of product {item.product_id} must be between 1 and {limits.max_quantity}"
            )
        if item.product_id in seen:
            raise InvalidArgument(f"product {item.product_id} appears twice; add up the quantity")
        seen.add(item.product_id)


class Repository:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        topic: str,
        limits: Limits,
        faults: FaultFlags | None = None,
    ):
        self._sessions = sessions
        self._topic = topic
        self.limits = limits
        self._faults = faults

    # The one fault that acts inside the repository's work, because what it demonstrates is a
    # slow statement: `db_slow_ms` runs a real pg_sleep on the connection an operation has just
    # taken, before the operation's own statements, so that pooled connection (and a read's
    # transaction) is held as a slow query would hold it, and the trace shows the statement's
    # span under the RPC's. Operations take their connection through `_session()` or
    # `_single_statements()`, the only callers of this hook.
    async def _slow_statement_fault(self, conn: AsyncSession | AsyncConnection) -> None:
        ms = self._faults.value("db_slow_ms") if self._faults else 0
        if ms:
            await conn.execute(text("SELECT pg_sleep(:s)"), {"s": ms / 1000})

    def _session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session for one read. Without the db_slow_ms fault, the session itself (it is its
        own context manager: nothing is added per call)."""
        session = self._sessions()
        if self._faults is not None and self._faults.value("db_slow_ms"):
            return self._slowed(session)
        return session

    @asynccontextmanager
    async def _slowed(self, session: AsyncSession) -> AsyncIterator[AsyncSession]:
        async with session:
            await self._slow_statement_fault(session)
            yield session

    @asynccontextmanager
    async def _single_statements(self) -> AsyncIterator[AsyncConnection]:
        """An autocommit connection (perflab.common.db.single_statements), after the fault."""
        async with single_statements(self._sessions) as conn:
            await self._slow_statement_fault(conn)
            yield conn

    async def get_product(self, product_id: int) -> Product:
        async with self._session() as session:
            product = await session.get(Product, product_id)
        if product is None:
            raise NotFound(f"product {product_id} does not exist")
        return product

    async def list_products(
        self, category: str, page_size: int, page_token: str
    ) -> tuple[list[Product], str]:
        size = _page_size(page_size, self.limits)
        query = select(Product).order_by(Product.id).limit(size + 1)
        if category:
            query = query.where(Product.category == _text(category, "category", 64))
        if page_token:
            try:
                (after,) = decode_token(page_token, 1)
                if not 0 <= int(after) < 2**63:
                    raise ValueError(after)
                query = query.where(Product.id > int(after))
            except (InvalidPageToken, ValueError) as exc:
                raise InvalidArgument("page_token is not a token this API issued") from exc
        async with self._session() as session:
            products = list((await session.scalars(query)).all())
        if len(products) <= size:
            return products, ""
        return products[:size], encode_token(str(products[size - 1].id))

    async def create_order(
        self, customer_id: str, items: Sequence[NewItem], idempotency_key: str = ""
    ) -> tuple[Order, bool]:
        """Returns the order and whether it was created now (False: an idempotent replay)."""
        validate_new_order(customer_id, items, self.limits)
        _text(idempotency_key, "idempotency key", 128)
        if idempotency_key:
            existing = await self._by_idempotency_key(idempotency_key)
            if existing is not None:
                return self._check_replay(existing, customer_id, items), False

        order_id = uuid.uuid4()
        try:
            order = await self._insert_order(order_id, customer_id, items, idempotency_key)
        except _LostRace:
            existing = await self._by_idempotency_key(idempotency_key)
            assert existing is not None
            return self._check_replay(existing, customer_id, items), False
        ORDERS_CREATED.inc()
        return order, True

    async def _insert_order(
        self, order_id: uuid.UUID, customer_id: str, items: Sequence[NewItem], idempotency_key: str
    ) -> Order:
        """Order, items and outbox event in one statement, so all of them or none. Returns
        the order as written, built from what was written (no read-back).

        Two statements in autocommit (the prices, then the write), not the ORM's unit of work
        in a transaction: the orders profile showed the ORM and each database round trip
        (BEGIN and COMMIT included) costing more CPU than PostgreSQL's own work. Reading the
        prices in the same transaction as the write would not make them any firmer under
        READ COMMITTED."""
        async with self._single_statements() as conn:
            ids = [item.product_id for item in items]
            rows = await conn.execute(
                select(_PRODUCTS.c.id, _PRODUCTS.c.price_cents, _PRODUCTS.c.currency).where(
                    _PRODUCTS.c.id.in_(ids)
                )
            )
            prices = {pid: (price, currency) for pid, price, currency in rows}
            missing = sorted(set(ids) - prices.keys())
            if missing:
                raise InvalidArgument(f"unknown product ids: {missing}")
            currencies = {currency for _, currency in prices.values()}
            if len(currencies) > 1:
                raise InvalidArgument("all products of an order must share one currency")
            currency = currencies.pop()
            total = sum(prices[i.product_id][0] * i.quantity for i in items)
            now = datetime.now(UTC)
            values = {
                "id": order_id,
                "customer_id": customer_id,
                "status": PENDING,
                "total_cents": total,
                "currency": currency,
                "idempotency_key": idempotency_key or None,
                "created_at": now,
                "updated_at": now,
            }
            lines = [
                {
                    "order_id": order_id,
                    "product_id": i.product_id,
                    "quantity": i.quantity,
                    "unit_price_cents": prices[i.product_id][0],
                }
                for i in sorted(items, key=lambda i: i.product_id)
            ]
            event = events_pb2.OrderCreated(
                order_id=str(order_id),
                customer_id=customer_id,
                total_cents=total,
                currency=currency,
                created_at=timestamp(now),
            )
            headers: dict[str, str] = {}
            propagate.inject(headers)
            inserted = await conn.scalar(
                _INSERT_ORDER,
                {
                    **values,
                    "product_ids": [line["product_id"] for line in lines],
                    "quantities": [line["quantity"] for line in lines],
                    "prices": [line["unit_price_cents"] for line in lines],
                    "topic": self._topic,
                    "event_key": str(order_id),
                    "payload": event.SerializeToString(),
                    "headers": json.dumps(headers),
                },
            )
            if inserted is None:  # a concurrent request with the same key won the race
                raise _LostRace
        return _order(values, lines)

    def _check_replay(self, order: Order, customer_id: str, items: Sequence[NewItem]) -> Order:
        requested = sorted((i.product_id, i.quantity) for i in items)
        stored = sorted((i.product_id, i.quantity) for i in order.items)
        if order.customer_id != customer_id or requested != stored:
            raise Conflict("this idempotency key was already used for a different order")
        return order

    async def _by_idempotency_key(self, key: str) -> Order | None:
        # A plain session: db_slow_ms slows the order's write, not this look-up before it.
        async with self._sessions() as session:
            return await session.scalar(select(Order).where(Order.idempotency_key == key))

    async def get_order(self, order_id: str) -> Order:
        oid = _parse_uuid(order_id, "order id")
        async with self._session() as session:
            order = await session.get(Order, oid)
        if order is None:
            raise NotFound(f"order {_quote(order_id)} does not exist")
        return order

    async def list_customer_orders(
        self, customer_id: str, page_size: int, page_token: str
    ) -> tuple[list[Order], str]:
        if not CUSTOMER_ID.match(customer_id):
            raise InvalidArgument("customer_id must be 1-64 characters of A-Z, a-z, 0-9, _ and -")
        size = _page_size(page_size, self.limits)
        query = (
            select(Order)
            .where(Order.customer_id == customer_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(size + 1)
        )
        if page_token:
            try:
                created, oid = decode_token(page_token, 2)
                # Normalised to UTC, which fails for times no database could store.
                cursor = (datetime.fromisoformat(created).astimezone(UTC), uuid.UUID(oid))
            except (InvalidPageToken, ValueError, OverflowError) as exc:
                raise InvalidArgument("page_token is not a token this API issued") from exc
            query = query.where(tuple_(Order.created_at, Order.id) < cursor)
        async with self._session() as session:
            orders = list((await session.scalars(query)).all())
        if len(orders) <= size:
            return orders, ""
        last = orders[size - 1]
        return orders[:size], encode_token(last.created_at.isoformat(), str(last.id))

    async def apply_payment_result(
        self, order_id: str, paid: bool, payment_id: str, reason: str
    ) -> Order:
        oid = _parse_uuid(order_id, "order_id")
        _text(payment_id, "payment_id", 64)
        reason = _text(reason[:200], "reason", 200)
        status = PAID if paid else PAYMENT_FAILED
        async with self._single_statements() as conn:
            rows = (
                await conn.execute(
                    _APPLY_PAYMENT,
                    {
                        "id": oid,
                        "status": status,
                        "payment_id": payment_id or None,
                        "failure_reason": (reason[:200] or None) if not paid else None,
                    },
                )
            ).mappings()
            found = rows.all()
        row = found[0] if found else None
        if row is not None:
            order = _order(row, [{k: r[k] for k in _ITEM_COLUMNS} for r in found])
        if row is None:  # not PENDING (a replay, or already final): as it stands
            return await self.get_order(order_id)
        ORDERS_COMPLETED.labels(status).inc()
        ORDER_COMPLETION.labels(status).observe(time.time() - order.created_at.timestamp())
        return order


def _order(row: Mapping[Any, Any], lines: Sequence[Mapping[Any, Any]]) -> Order:
    """A detached Order (with its items) from column values already at hand."""
    order = Order(**{c: row[c] for c in _ORDER_COLUMNS if c in row})
    order.items = [OrderItem(**line) for line in lines]
    return order


# A PENDING order's final status, and the order with its items (a row per item), in one
# statement; no row when the order is not PENDING (already final, or unknown).
_APPLY_PAYMENT = text(
    """
    WITH updated AS (
        UPDATE orders
        SET status = :status, payment_id = :payment_id, failure_reason = :failure_reason,
            updated_at = now()
        WHERE id = :id AND status = 'PENDING'
        RETURNING *
    )
    SELECT updated.*, item.order_id, item.product_id, item.quantity, item.unit_price_cents
    FROM updated JOIN order_items AS item ON item.order_id = updated.id
    ORDER BY item.product_id
    """
)
_ITEM_COLUMNS = ("order_id", "product_id", "quantity", "unit_price_cents")

# The order, its items and its outbox event in one statement (one round trip). Nothing is
# written when another order holds the idempotency key: then it returns no row.
_INSERT_ORDER = text(
    """
    WITH new_order AS (
        INSERT INTO orders (id, customer_id, status, total_cents, currency, idempotency_key,
                            created_at, updated_at)
        VALUES (:id, :customer_id, :status, :total_cents, :currency, :idempotency_key,
                :created_at, :updated_at)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
    ), new_items AS (
        INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
        SELECT new_order.id, line.product_id, line.quantity, line.unit_price_cents
        FROM new_order, unnest(CAST(:product_ids AS bigint[]), CAST(:quantities AS integer[]),
                               CAST(:prices AS bigint[]))
             AS line(product_id, quantity, unit_price_cents)
    ), new_event AS (
        INSERT INTO outbox (topic, key, payload, headers, created_at)
        SELECT :topic, :event_key, :payload, CAST(:headers AS jsonb), :created_at FROM new_order
    )
    SELECT id FROM new_order
    """
)
_PRODUCTS: Table = Product.__table__  # type: ignore[assignment]
_ORDERS: Table = Order.__table__  # type: ignore[assignment]
_ORDER_ITEMS: Table = OrderItem.__table__  # type: ignore[assignment]
_OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]
_ORDER_COLUMNS = tuple(c.key for c in Order.__table__.c)
