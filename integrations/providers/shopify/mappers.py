"""Shopify REST payloads -> canonical records (the provider's default mapping).

Money is Shopify's decimal string in the shop's currency, kept as `Decimal`; times are ISO 8601 with the
shop's UTC offset and stay aware. Anything a record cannot be understood without (an id, a total, a time that
is present but unparseable, a status we have no mapping for) raises `BadRecordError`, so that one record
fails alone and visibly instead of being written half-right.

Choices written here are the values of the orders domain (`orders.models`: Channel, OrderStatus,
PaymentStatus, FulfillmentStatus, PaymentRecordStatus, ProductCategory); a test checks they stay valid.

Order status (the CRM's lifecycle) is derived from Shopify's three separate facts, first match wins:

| Shopify                                              | CRM order status |
|------------------------------------------------------|------------------|
| `cancelled_at` set                                   | cancelled        |
| fully refunded (financial status or refund total)    | refunded         |
| `fulfillment_status` fulfilled and `closed_at` set   | completed        |
| `fulfillment_status` fulfilled                       | shipped          |
| unpaid (pending or voided) and nothing fulfilled     | pending          |
| anything else (paid, authorized, partially ...)      | confirmed        |

Payment status follows `financial_status` (pending -> unpaid, the rest by name), then successful refund
transactions in `refunds[]` can only move it to partially_refunded or refunded. Fulfilment: null/unfulfilled
-> unfulfilled, partial -> partially_fulfilled, fulfilled -> fulfilled, restocked -> returned. Orders with
`test: true` are skipped (a store owner's test checkouts are not sales). Channel: `source_name` "pos" ->
pos, anything else (web, draft orders, apps) -> online_store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, overload

from integrations.errors import BadRecordError
from integrations.records import (
    CustomerRecord,
    InventoryRecord,
    OrderItemRecord,
    OrderRecord,
    PaymentRecord,
    ProductRecord,
)

PROVIDER = "shopify"
SHOP_CURRENCY_KEY = "_shop_currency"  # set on raw products by fetch_page: REST products carry no currency
MAX_SKU = 64
MAX_NAME = 200
ZERO = Decimal("0")

PAYMENT_STATUS = {
    "pending": "unpaid",
    "authorized": "authorized",
    "partially_paid": "partially_paid",
    "paid": "paid",
    "partially_refunded": "partially_refunded",
    "refunded": "refunded",
    "voided": "voided",
}
PAYMENT_RECORD_STATUS = {
    "unpaid": "pending",
    "authorized": "authorized",
    "partially_paid": "captured",
    "paid": "captured",
    "partially_refunded": "partially_refunded",
    "refunded": "refunded",
    "voided": "voided",
}
FULFILLMENT_STATUS = {
    None: "unfulfilled",
    "unfulfilled": "unfulfilled",
    "partial": "partially_fulfilled",
    "fulfilled": "fulfilled",
    "restocked": "returned",
}
CATEGORIES = {
    "ring": "ring",
    "engagement ring": "engagement_ring",
    "wedding band": "wedding_band",
    "wedding ring": "wedding_band",
    "necklace": "necklace",
    "chain": "necklace",
    "pendant": "pendant",
    "bracelet": "bracelet",
    "bangle": "bracelet",
    "earring": "earrings",
    "earrings": "earrings",
    "brooch": "brooch",
    "cufflink": "cufflinks",
    "cufflinks": "cufflinks",
    "watch": "watch",
    "loose stone": "loose_stone",
    "gemstone": "loose_stone",
    "repair": "repair_service",
    "repair service": "repair_service",
    "custom design": "custom_design",
    "gift card": "gift_card",
}
METAL_OPTIONS = ("metal", "material", "metal type")
GEMSTONE_OPTIONS = ("gemstone", "stone", "gem", "center stone")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


# --- primitives ----------------------------------------------------------------------------------------------------
@overload
def parse_time(value: Any, field: str, *, required: Literal[True]) -> datetime: ...
@overload
def parse_time(value: Any, field: str, *, required: bool = False) -> datetime | None: ...
def parse_time(value: Any, field: str, *, required: bool = False) -> datetime | None:
    """An ISO 8601 time with an offset -> aware datetime. Absent: None (or an error when `required`)."""
    if value in (None, ""):
        if required:
            raise ValueError(f"{field} is missing")
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"{field} has no UTC offset: {value!r}")
    return parsed


def parse_money(value: Any, field: str) -> Decimal:
    """A decimal string (or number) -> Decimal; floats never touch money."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"{field} is missing")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{field} is not an amount: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{field} is not a non-negative amount: {value!r}")
    return amount


def _currency(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise ValueError(f"{field} is not an ISO 4217 code: {value!r}")
    return value


def _text(value: Any) -> str:
    return str(value).strip() if value not in (None, "") else ""


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    return [t.strip() for t in str(value or "").split(",") if t.strip()]


def variant_sku(variant: dict[str, Any]) -> str:
    """The variant's SKU, or a stable stand-in built from its id when the merchant left SKU empty (orders'
    line items use the same stand-in, so they still match the product)."""
    sku = _text(variant.get("sku")) or f"shopify-variant-{variant['id']}"
    if len(sku) > MAX_SKU:
        raise ValueError(f"SKU longer than {MAX_SKU} characters: {sku[:80]!r}")
    return sku


def guarded(resource: str, raw: Any, build: Callable[[dict[str, Any]], list], *, external_id: str) -> list:
    """Run a mapper, turning any way a payload can be wrong into a `BadRecordError` for this one record."""
    if not isinstance(raw, dict):
        raise BadRecordError(f"Shopify {resource} record is not an object", external_id=external_id, payload=raw)
    try:
        return build(raw)
    except BadRecordError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
        reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        raise BadRecordError(
            f"Shopify {resource} {external_id}: {reason}", external_id=external_id, payload=raw
        ) from exc


# --- customers -----------------------------------------------------------------------------------------------------
def address(raw: dict[str, Any], kind: str = "shipping") -> dict[str, str]:
    """A Shopify address -> the CRM's address shape."""
    return {
        "kind": kind,
        "line1": _text(raw.get("address1")),
        "line2": _text(raw.get("address2")),
        "city": _text(raw.get("city")),
        "region": _text(raw.get("province_code") or raw.get("province")),
        "postal_code": _text(raw.get("zip")),
        "country": _text(raw.get("country_code") or raw.get("country")),
    }


def _addresses(raw: dict[str, Any]) -> list[dict[str, str]]:
    listed = [a for a in raw.get("addresses") or [] if isinstance(a, dict)]
    default = raw.get("default_address")
    if not listed and isinstance(default, dict):
        listed = [default]
    listed.sort(key=lambda a: not a.get("default"))  # the default address first
    return [address(a) for a in listed]


def _marketing_consent(raw: dict[str, Any]) -> bool | None:
    consent = raw.get("email_marketing_consent")
    if isinstance(consent, dict) and consent.get("state"):
        return consent["state"] == "subscribed"
    legacy = raw.get("accepts_marketing")  # older API versions
    return legacy if isinstance(legacy, bool) else None


def _person_name(raw: dict[str, Any]) -> str:
    return " ".join(p for p in (_text(raw.get("first_name")), _text(raw.get("last_name"))) if p)


def customer(raw: dict[str, Any]) -> CustomerRecord:
    customer_id = str(raw["id"])
    email = _text(raw.get("email"))
    return CustomerRecord(
        external_id=customer_id,
        source_updated_at=parse_time(raw.get("updated_at"), "updated_at"),
        name=(_person_name(raw) or email or f"Shopify customer {customer_id}")[:MAX_NAME],
        email=email,
        phone=_text(raw.get("phone")),
        addresses=_addresses(raw),
        tags=_tags(raw.get("tags")),
        marketing_consent=_marketing_consent(raw),
        notes=_text(raw.get("note")),
    )


def customer_records(raw: dict[str, Any]) -> list[CustomerRecord]:
    return [customer(raw)]


# --- products and inventory ------------------------------------------------------------------------------------------
def _option_value(product: dict[str, Any], variant: dict[str, Any], names: tuple[str, ...]) -> str:
    for option in product.get("options") or []:
        if _text(option.get("name")).lower() in names:
            position = int(option.get("position") or 0)
            if 1 <= position <= 3:
                return _text(variant.get(f"option{position}"))
    return ""


def _tag_value(tags: list[str], prefixes: tuple[str, ...]) -> str:
    """`metal:18k Yellow Gold` style tags, a common way to keep structured facts in Shopify's free-form tags."""
    for tag in tags:
        key, sep, value = tag.partition(":")
        if sep and key.strip().lower() in prefixes and value.strip():
            return value.strip()
    return ""


def category(product_type: Any) -> str:
    text = _text(product_type).lower()
    return CATEGORIES.get(text) or CATEGORIES.get(text.removesuffix("s")) or "other"


def product_records(raw: dict[str, Any]) -> list[ProductRecord]:
    """One record per variant (each variant is a SKU). A product without variants sells nothing: no records."""
    currency = _currency(raw.get(SHOP_CURRENCY_KEY), "shop currency")
    title = _text(raw.get("title"))
    tags = _tags(raw.get("tags"))
    product_updated = parse_time(raw.get("updated_at"), "updated_at")
    records = []
    for variant in raw.get("variants") or []:
        variant_title = _text(variant.get("title"))
        name = f"{title} - {variant_title}" if variant_title and variant_title != "Default Title" else title
        variant_updated = parse_time(variant.get("updated_at"), "variant updated_at")
        times = [t for t in (product_updated, variant_updated) if t is not None]
        records.append(
            ProductRecord(
                external_id=str(variant["id"]),
                source_updated_at=max(times) if times else None,
                sku=variant_sku(variant),
                name=(name or variant_sku(variant))[:MAX_NAME],
                price=parse_money(variant.get("price"), "variant price"),
                currency=currency,
                category=category(raw.get("product_type")),
                metal=(_option_value(raw, variant, METAL_OPTIONS) or _tag_value(tags, METAL_OPTIONS))[:64],
                gemstone=(_option_value(raw, variant, GEMSTONE_OPTIONS) or _tag_value(tags, GEMSTONE_OPTIONS))[:64],
                active=_text(raw.get("status") or "active") == "active",
            )
        )
    return records


def inventory_records(raw: dict[str, Any]) -> list[InventoryRecord]:
    """Stock for one inventory item (one variant): `available` summed over every location that stocks it.

    Shopify's `available` goes negative when a store oversells; the CRM keeps stock non-negative, so the sum
    is floored at zero (the oversold units show up as orders, not as negative stock).
    """
    levels = raw.get("inventory_levels") or []
    total = sum(int(level["available"]) for level in levels if level.get("available") is not None)
    times = [t for level in levels if (t := parse_time(level.get("updated_at"), "level updated_at")) is not None]
    return [
        InventoryRecord(
            external_id=str(raw["inventory_item_id"]),
            source_updated_at=max(times) if times else None,
            sku=variant_sku({"sku": raw.get("sku"), "id": raw["variant_id"]}),
            quantity=max(0, total),
        )
    ]


# --- orders ---------------------------------------------------------------------------------------------------------
def _line_item(raw: dict[str, Any]) -> OrderItemRecord:
    quantity = int(raw["quantity"])
    if quantity < 1:
        raise ValueError(f"line item {raw.get('id')} has quantity {quantity}")
    variant_id = raw.get("variant_id")
    sku = _text(raw.get("sku")) or (f"shopify-variant-{variant_id}" if variant_id else "")
    title = _text(raw.get("title"))
    variant_title = _text(raw.get("variant_title"))
    name = _text(raw.get("name")) or (f"{title} - {variant_title}" if variant_title else title)
    attributes: dict[str, str] = {"variant": variant_title} if variant_title else {}
    for prop in raw.get("properties") or []:
        key = _text(prop.get("name"))
        if key and not key.startswith("_"):  # "_"-prefixed properties are private to the storefront
            attributes[key] = _text(prop.get("value"))
    return OrderItemRecord(
        sku=sku[:MAX_SKU],
        name=(name or sku)[:MAX_NAME],
        quantity=quantity,
        unit_price=parse_money(raw.get("price"), "line item price"),
        external_id=str(raw.get("id", "")),
        attributes=attributes,
    )


def _refunded_amount(raw: dict[str, Any]) -> Decimal:
    total = ZERO
    for refund in raw.get("refunds") or []:
        for transaction in refund.get("transactions") or []:
            if transaction.get("kind") == "refund" and transaction.get("status") == "success":
                total += parse_money(transaction.get("amount"), "refund amount")
    return total


def _shipping_total(raw: dict[str, Any]) -> Decimal:
    shop_money = ((raw.get("total_shipping_price_set") or {}).get("shop_money") or {}).get("amount")
    if shop_money is not None:
        return parse_money(shop_money, "total_shipping_price_set")
    return sum(
        (parse_money(line.get("price"), "shipping line price") for line in raw.get("shipping_lines") or []), ZERO
    )


def payment_status(financial_status: Any, *, total: Decimal, refunded: Decimal) -> str:
    if financial_status not in PAYMENT_STATUS:
        raise ValueError(f"unknown financial_status {financial_status!r}")
    status = PAYMENT_STATUS[financial_status]
    if refunded > 0 and status in ("paid", "partially_paid", "partially_refunded"):
        status = "refunded" if refunded >= total else "partially_refunded"
    return status


def fulfillment_status(value: Any) -> str:
    if value not in FULFILLMENT_STATUS:
        raise ValueError(f"unknown fulfillment_status {value!r}")
    return FULFILLMENT_STATUS[value]


def order_status(raw: dict[str, Any], *, payment: str, fulfillment: str) -> str:
    if raw.get("cancelled_at"):
        return "cancelled"
    if payment == "refunded":
        return "refunded"
    if fulfillment == "fulfilled":
        return "completed" if raw.get("closed_at") else "shipped"
    if payment in ("unpaid", "voided") and fulfillment == "unfulfilled":
        return "pending"
    return "confirmed"


def _captured(financial_status: str, raw: dict[str, Any], total: Decimal) -> Decimal:
    if financial_status in ("paid", "partially_refunded", "refunded"):
        return total
    if financial_status == "partially_paid" and raw.get("total_outstanding") is not None:
        return max(ZERO, total - parse_money(raw["total_outstanding"], "total_outstanding"))
    return ZERO


def _order_customer(raw: dict[str, Any]) -> CustomerRecord | None:
    embedded = raw.get("customer")
    if not isinstance(embedded, dict) or not embedded.get("id"):
        return None
    return customer(embedded)


def order_records(raw: dict[str, Any]) -> list[OrderRecord]:
    if raw.get("test") is True:
        return []
    order_id = str(raw["id"])
    currency = _currency(raw.get("currency"), "currency")
    total = parse_money(raw.get("total_price"), "total_price")
    discounts = parse_money(raw.get("total_discounts") or "0", "total_discounts")
    if raw.get("total_line_items_price") is not None:
        subtotal = parse_money(raw["total_line_items_price"], "total_line_items_price")
    else:  # subtotal_price is after discounts; the CRM's subtotal is before them
        subtotal = parse_money(raw.get("subtotal_price"), "subtotal_price") + discounts
    refunded = _refunded_amount(raw)
    payment = payment_status(raw.get("financial_status"), total=total, refunded=refunded)
    fulfillment = fulfillment_status(raw.get("fulfillment_status"))
    updated = parse_time(raw.get("updated_at"), "updated_at")
    buyer = _order_customer(raw)
    gateways = [g for g in raw.get("payment_gateway_names") or [] if g]
    payment_record = PaymentRecord(
        external_id=f"order-{order_id}",
        source_updated_at=updated,
        provider=PROVIDER,
        amount=total,
        currency=currency,
        status=PAYMENT_RECORD_STATUS[payment],
        method=_text(gateways[0] if gateways else raw.get("gateway"))[:50],
        captured_amount=_captured(raw["financial_status"], raw, total),
        refunded_amount=refunded,
        order_reference=order_id,
        customer_external_id=buyer.external_id if buyer else "",
    )
    return [
        OrderRecord(
            external_id=order_id,
            source_updated_at=updated,
            external_number=_text(raw.get("name")) or f"#{raw.get('order_number', order_id)}",
            currency=currency,
            placed_at=parse_time(raw.get("processed_at") or raw.get("created_at"), "created_at", required=True),
            channel="pos" if raw.get("source_name") == "pos" else "online_store",
            status=order_status(raw, payment=payment, fulfillment=fulfillment),
            payment_status=payment,
            fulfillment_status=fulfillment,
            items=[_line_item(item) for item in raw.get("line_items") or []],
            subtotal=subtotal,
            discount_total=discounts,
            tax_total=parse_money(raw.get("total_tax") or "0", "total_tax"),
            shipping_total=_shipping_total(raw),
            total=total,
            customer=buyer,
            notes=_text(raw.get("note")),
            payments=[payment_record],
        )
    ]
