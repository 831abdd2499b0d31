"""Shopify webhooks: HMAC check, parsing, and the handler table (`shared/providers/shopify.md` §6).

Signature: `X-Shopify-Hmac-Sha256` is the base64 HMAC-SHA256 of the raw body bytes keyed by the app's client
secret (or, for webhooks created in the store admin, that page's signing key). Each configured secret is
tried (the previous one stays valid for up to an hour after a rotation) and every comparison is
constant-time. Nothing else is signed, so `X-Shopify-Triggered-At` is only used as the event time, never as a
replay check: anyone could change it without breaking the HMAC.

De-duplication ids: `X-Shopify-Webhook-Id` identifies a delivery and is kept across its retries;
`X-Shopify-Event-Id` is shared by the deliveries of one event to several subscriptions (the group id).

Handlers reuse the sync's mappers (`shopify.mappers`), so a webhook and a pull write identical records, stamped
with the resource's own `updated_at` (older versions never win). Payloads that do not carry enough are
completed from the Admin API: a refund by its order, a product by the shop's currency, an inventory level by
every location's level of its item and the item's SKU.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from integrations.errors import BadRecordError
from integrations.providers.base import (
    Connection,
    InboundEvent,
    WebhookOutcome,
    WebhookSignatureError,
    header_value,
    hmac_sha256,
    signature_matches,
)

from . import mappers

if TYPE_CHECKING:
    from .client import ShopifyApi

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
TOPIC_HEADER = "X-Shopify-Topic"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"

Handler = Callable[[InboundEvent, Connection], WebhookOutcome]
ApiFactory = Callable[[Connection], "ShopifyApi"]
ExternalId = Callable[[str, dict[str, Any]], str]


def compute_hmac(*, secret: str, body: bytes) -> str:
    return base64.b64encode(hmac_sha256(secret, body)).decode("ascii")


def verify(*, headers: Mapping[str, str], body: bytes, secrets: list[str], now: datetime) -> None:
    value = header_value(headers, HMAC_HEADER)
    if not value:
        raise WebhookSignatureError(f"missing {HMAC_HEADER} header")
    expected = (compute_hmac(secret=secret, body=body) for secret in secrets)
    if not signature_matches(expected=expected, received=[value.strip()]):
        raise WebhookSignatureError("HMAC does not match")


def parse(*, headers: Mapping[str, str], body: bytes) -> InboundEvent:
    webhook_id = (header_value(headers, WEBHOOK_ID_HEADER) or "").strip()
    if not webhook_id:
        raise ValueError(f"missing {WEBHOOK_ID_HEADER} header")
    topic = (header_value(headers, TOPIC_HEADER) or "").strip()
    if not topic:
        raise ValueError(f"missing {TOPIC_HEADER} header")
    try:
        payload = json.loads(body)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ValueError("body is not a JSON object")
    return InboundEvent(
        event_id=webhook_id,
        event_type=topic,
        payload=payload,
        occurred_at=_triggered_at(header_value(headers, TRIGGERED_AT_HEADER)),
        group_id=(header_value(headers, EVENT_ID_HEADER) or "").strip(),
    )


def _triggered_at(value: str | None) -> datetime | None:
    """`2026-05-01T10:15:30.123456789Z` -> aware datetime (nanoseconds cut to microseconds); None if absent or
    unreadable: it is informational, and unsigned."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


# --- handlers -------------------------------------------------------------------------------------------------------


def _id(payload: Mapping[str, Any], name: str, event: InboundEvent) -> str:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise BadRecordError(f"{event.event_type} payload has no {name}", external_id=event.event_id)
    return str(value)


def app_uninstalled(event: InboundEvent, connection: Connection) -> WebhookOutcome:
    shop = event.payload.get("myshopify_domain") or event.payload.get("domain") or "the shop"
    return WebhookOutcome(disconnect=True, note=f"the app was uninstalled from {shop}")


def handlers(*, api_factory: ApiFactory, external_id: ExternalId) -> dict[str, Handler]:
    """The handler table. `api_factory` gives the Admin API for a connection (for payloads that must be
    completed); `external_id` is the provider's id rule, so a bad payload fails under the id the sync uses."""

    def records(resource: str, raw: dict[str, Any], build: Callable[[dict[str, Any]], list]) -> list:
        return mappers.guarded(resource, raw, build, external_id=external_id(resource, raw))

    def order_changed(event: InboundEvent, connection: Connection) -> WebhookOutcome:
        """orders/create, updated, paid, cancelled, fulfilled, partially_fulfilled: the payload is the whole order
        (a test order maps to no records, as in the sync)."""
        found = records("orders", event.payload, mappers.order_records)
        return WebhookOutcome(resource="orders", records=found, note="" if found else "test order: not imported")

    def customer_changed(event: InboundEvent, connection: Connection) -> WebhookOutcome:
        return WebhookOutcome(
            resource="customers", records=records("customers", event.payload, mappers.customer_records)
        )

    def refund_created(event: InboundEvent, connection: Connection) -> WebhookOutcome:
        """refunds/create carries the refund, not the order whose payment status and refunded amount it
        changes: the order is read back and written as it is now."""
        order_id = _id(event.payload, "order_id", event)
        order = api_factory(connection).record("orders", order_id, "order")
        if order is None:
            return WebhookOutcome(resource="orders", note=f"order {order_id} no longer exists in Shopify")
        return WebhookOutcome(resource="orders", records=records("orders", order, mappers.order_records))

    def product_updated(event: InboundEvent, connection: Connection) -> WebhookOutcome:
        """products/create and products/update (the same payload, the whole product): REST products carry no
        currency, so the shop's is read (as the sync does)."""
        raw = {**event.payload, mappers.SHOP_CURRENCY_KEY: api_factory(connection).shop_currency()}
        return WebhookOutcome(resource="products", records=records("products", raw, mappers.product_records))

    def inventory_level_updated(event: InboundEvent, connection: Connection) -> WebhookOutcome:
        """inventory_levels/update carries one location's level of one inventory item; the CRM keeps a SKU's
        stock summed over every location. So every level of the item is read, and the item itself for its SKU
        (the level has none; Shopify's InventoryItem resource, which the sheet's resource table does not list).
        An item without a SKU is left to the next inventory sync, which knows its variant."""
        item_id = _id(event.payload, "inventory_item_id", event)
        api = api_factory(connection)
        item = api.record("inventory_items", item_id, "inventory_item")
        if item is None:
            return WebhookOutcome(resource="inventory", note=f"inventory item {item_id} no longer exists")
        sku = str(item.get("sku") or "").strip()
        if not sku:
            raise BadRecordError(f"inventory item {item_id} has no SKU", external_id=item_id)
        levels = api.inventory_levels([int(item_id)]).get(int(item_id), [])
        raw = {"inventory_item_id": int(item_id), "sku": sku, "variant_id": None, "inventory_levels": levels}
        return WebhookOutcome(resource="inventory", records=records("inventory", raw, mappers.inventory_records))

    return {
        "orders/create": order_changed,
        "orders/updated": order_changed,
        "orders/paid": order_changed,
        "orders/cancelled": order_changed,
        "orders/fulfilled": order_changed,
        "orders/partially_fulfilled": order_changed,
        "refunds/create": refund_created,
        "customers/create": customer_changed,
        "customers/update": customer_changed,
        "products/create": product_updated,
        "products/update": product_updated,
        "inventory_levels/update": inventory_level_updated,
        "app/uninstalled": app_uninstalled,
    }
