"""A tiny in-memory provider for engine tests that must not depend on any real provider's shape.

`FakeStore` holds the "remote" data per resource (raw dicts with `id` and `updated_at`), pages through it
ordered by (updated_at, id) with an offset cursor, filters by `since` like an `updated_at_min` API, and can
be told to raise on a given fetch (to simulate a crash, a 429, a 401).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from integrations.errors import BadRecordError
from integrations.providers.base import (
    AuthKind,
    Capability,
    Category,
    Connection,
    Page,
    Provider,
    RecordKind,
    Resource,
)
from integrations.records import (
    CustomerRecord,
    InventoryRecord,
    OrderItemRecord,
    OrderRecord,
    PaymentRecord,
    ProductRecord,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


@dataclass
class FakeStore:
    data: dict[str, list[dict]] = field(default_factory=lambda: {"customers": [], "products": [], "orders": []})
    page_size: int = 2
    fetches: list[tuple[str, dict, datetime | None]] = field(default_factory=list)
    # fetch number (1-based, counted over the whole test) -> exception to raise instead of answering
    raise_on_fetch: dict[int, Exception] = field(default_factory=dict)
    refreshes: int = 0
    refreshed_credentials: dict | None = None
    live_error: Exception | None = None

    def put(self, resource: str, raw: dict) -> None:
        rows = self.data.setdefault(resource, [])
        rows[:] = [row for row in rows if row["id"] != raw["id"]] + [raw]


class FakeProvider(Provider):
    key = "fakeshop"
    name = "Fake Shop"
    category = Category.ECOMMERCE
    auth_kind = AuthKind.ACCESS_TOKEN
    capabilities = frozenset({Capability.PULL_CUSTOMERS, Capability.PULL_ORDERS, Capability.LIVE_CHECK})
    default_base_url = "https://{shop}.fake.example"
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"shop": {"type": "string", "minLength": 1}, "base_url": {"type": "string"}},
        "required": ["shop"],
        "additionalProperties": False,
    }
    credentials_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"access_token": {"type": "string"}},
        "required": ["access_token"],
    }
    resources = (
        Resource("customers", RecordKind.CUSTOMER),
        Resource("products", RecordKind.PRODUCT),
        Resource("inventory", RecordKind.INVENTORY, depends_on=("products",)),
        Resource("orders", RecordKind.ORDER, depends_on=("customers", "products")),
    )
    store: ClassVar[FakeStore] = FakeStore()

    def fetch_page(self, connection: Connection, resource: str, *, cursor: dict, since: datetime | None) -> Page:
        store = self.store
        store.fetches.append((resource, dict(cursor), since))
        error = store.raise_on_fetch.pop(len(store.fetches), None)
        if error is not None:
            raise error
        rows = sorted(store.data.get(resource, []), key=lambda row: (row["updated_at"], row["id"]))
        if since is not None:
            rows = [row for row in rows if datetime.fromisoformat(row["updated_at"]) >= since]
        offset = cursor.get("offset", 0)
        chunk = rows[offset : offset + store.page_size]
        done = offset + store.page_size >= len(rows)
        watermark = max((datetime.fromisoformat(row["updated_at"]) for row in chunk), default=None)
        return Page(records=chunk, cursor={"offset": offset + len(chunk)}, done=done, high_watermark=watermark)

    def transform(self, resource: str, raw: dict, connection: Connection) -> list:
        updated = datetime.fromisoformat(raw["updated_at"])
        if raw.get("broken"):
            raise BadRecordError("the record is broken", external_id=str(raw["id"]))
        if resource == "customers":
            return [_customer(raw, updated)]
        if resource == "products":
            return [
                ProductRecord(
                    external_id=str(raw["id"]),
                    source_updated_at=updated,
                    sku=raw["sku"],
                    name=raw.get("name", ""),
                    price=Decimal(raw["price"]),
                    currency=raw.get("currency", "USD"),
                    category=raw.get("category", "ring"),
                )
            ]
        if resource == "inventory":
            return [InventoryRecord(str(raw["id"]), updated, raw["sku"], int(raw["available"]))]
        if resource == "orders":
            items = [
                OrderItemRecord(
                    sku=i["sku"], name=i.get("name", i["sku"]), quantity=i["qty"], unit_price=Decimal(i["price"])
                )
                for i in raw["items"]
            ]
            total = sum((item.unit_price * item.quantity for item in items), Decimal(0))
            payments = [
                PaymentRecord(
                    external_id=str(p["id"]),
                    source_updated_at=updated,
                    provider="fakeshop",
                    amount=Decimal(p["amount"]),
                    currency=raw.get("currency", "USD"),
                    status=p.get("status", "captured"),
                    captured_amount=Decimal(p["amount"]),
                )
                for p in raw.get("payments", [])
            ]
            return [
                OrderRecord(
                    external_id=str(raw["id"]),
                    source_updated_at=updated,
                    external_number=raw.get("number", f"#{raw['id']}"),
                    currency=raw.get("currency", "USD"),
                    placed_at=datetime.fromisoformat(raw.get("created_at", raw["updated_at"])),
                    channel="online_store",
                    status=raw.get("status", "confirmed"),
                    payment_status=raw.get("payment_status", "paid"),
                    fulfillment_status="unfulfilled",
                    items=items,
                    subtotal=total,
                    discount_total=Decimal(0),
                    tax_total=Decimal(0),
                    shipping_total=Decimal(0),
                    total=total,
                    customer=_customer(raw["customer"], updated) if raw.get("customer") else None,
                    payments=payments,
                )
            ]
        raise KeyError(resource)

    def check_connection(self, connection: Connection) -> None:
        if self.store.live_error is not None:
            raise self.store.live_error

    def refresh_credentials(self, connection: Connection) -> dict | None:
        self.store.refreshes += 1
        fresh = self.store.refreshed_credentials
        if fresh is not None:
            connection.save_credentials(fresh)
        return fresh


def _customer(raw: dict, updated: datetime) -> CustomerRecord:
    return CustomerRecord(
        external_id=str(raw["id"]),
        source_updated_at=updated,
        name=raw.get("name", ""),
        email=raw.get("email", ""),
        tags=list(raw.get("tags", [])),
        notes=raw.get("note", ""),
    )


def customer(id: int, minutes: int, **extra) -> dict:
    return {"id": id, "email": f"c{id}@example.com", "name": f"Customer {id}", "updated_at": at(minutes), **extra}


def product(id: int, minutes: int, sku: str, price: str = "100.00", **extra) -> dict:
    return {"id": id, "sku": sku, "name": f"Product {sku}", "price": price, "updated_at": at(minutes), **extra}


def order(id: int, minutes: int, *, customer_id: int | None = None, items=None, **extra) -> dict:
    raw = {
        "id": id,
        "number": f"#{1000 + id}",
        "updated_at": at(minutes),
        "items": items if items is not None else [{"sku": "RING-1", "qty": 1, "price": "100.00"}],
        **extra,
    }
    if customer_id is not None:
        raw["customer"] = customer(customer_id, minutes)
    return raw
