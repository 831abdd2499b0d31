"""Canonical records: what a provider's transform returns and what the sync engine writes to the orders domain.

Providers translate their own payloads into these shapes (money as `Decimal` plus an ISO 4217 currency, times
as aware datetimes); the engine never sees a provider's raw field names except through configured field
mappings. `source_updated_at` is the provider's own "last changed" time, used so an older version of a record
never overwrites a newer one (DESIGN.md rule 2).
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass
class CustomerRecord:
    external_id: str
    source_updated_at: datetime | None
    name: str = ""
    email: str = ""
    phone: str = ""
    addresses: list[dict] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    marketing_consent: bool | None = None
    notes: str = ""


@dataclass
class ProductRecord:
    """One sellable SKU (a Shopify variant, a QuickBooks item, ...)."""

    external_id: str
    source_updated_at: datetime | None
    sku: str
    name: str
    price: Decimal
    currency: str
    category: str = ""
    metal: str = ""
    gemstone: str = ""
    active: bool = True


@dataclass
class InventoryRecord:
    """Stock on hand for one SKU, as the provider reports it (summed over locations by the transform)."""

    external_id: str
    source_updated_at: datetime | None
    sku: str
    quantity: int


@dataclass
class OrderItemRecord:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    external_id: str = ""
    attributes: dict = field(default_factory=dict)


@dataclass
class PaymentRecord:
    external_id: str
    source_updated_at: datetime | None
    provider: str
    amount: Decimal
    currency: str
    status: str
    method: str = ""
    captured_amount: Decimal = Decimal("0")
    refunded_amount: Decimal = Decimal("0")
    order_reference: str = ""  # the order's external id or CRM order number, when the provider knows it
    customer_external_id: str = ""


@dataclass
class OrderRecord:
    external_id: str
    source_updated_at: datetime | None
    external_number: str
    currency: str
    placed_at: datetime
    channel: str
    status: str
    payment_status: str
    fulfillment_status: str
    items: list[OrderItemRecord]
    subtotal: Decimal
    discount_total: Decimal
    tax_total: Decimal
    shipping_total: Decimal
    total: Decimal
    customer: CustomerRecord | None = None
    notes: str = ""
    payments: list[PaymentRecord] = field(default_factory=list)


Record = CustomerRecord | ProductRecord | InventoryRecord | OrderRecord | PaymentRecord
