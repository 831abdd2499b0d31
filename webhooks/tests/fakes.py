"""A tiny provider with webhooks, for inbox tests that must not depend on a real provider's payloads.

Deliveries are signed like Shopify's (base64 HMAC-SHA256 of the raw body in `X-Fake-Hmac`, no timestamp), the
body is `{"id", "type", "updated_at", "object": {...}}`, and the handler table covers each outcome the
processor must handle: records of every kind, a disconnect, an unusable payload, a transient failure. Customers,
orders and inventory are read by the sync engine's fake provider (`integrations.tests.fakes`), as a webhook and
a sync of one record must give the same record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from integrations.errors import BadRecordError, TransientError
from integrations.providers.base import (
    AuthKind,
    Capability,
    Category,
    Connection,
    InboundEvent,
    Provider,
    RecordKind,
    Resource,
    WebhookOutcome,
    WebhookSignatureError,
    signature_matches,
)
from integrations.records import PaymentRecord
from integrations.tests.fakes import FakeProvider, at

SIGNATURE_HEADER = "X-Fake-Hmac"


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def event(event_type: str, obj: dict[str, Any], *, minutes: int = 0, event_id: str | None = None) -> dict[str, Any]:
    event_id = event_id or f"fk_{uuid.uuid4().hex[:16]}"
    return {"id": event_id, "type": event_type, "updated_at": at(minutes), "object": obj}


def delivery(payload: Any, secret: str) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret), "X-Fake-Topic": "test"}


class FakeHooksProvider(Provider):
    key = "fakehooks"
    name = "Fake Hooks"
    category = Category.ECOMMERCE
    auth_kind = AuthKind.ACCESS_TOKEN
    capabilities = frozenset({Capability.WEBHOOKS, Capability.PULL_ORDERS})
    default_base_url = "https://fakehooks.example"
    resources = (
        Resource("customers", RecordKind.CUSTOMER),
        Resource("products", RecordKind.PRODUCT),
        Resource("inventory", RecordKind.INVENTORY, depends_on=("products",)),
        Resource("orders", RecordKind.ORDER, depends_on=("customers", "products")),
        Resource("payments", RecordKind.PAYMENT),
    )

    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes, secrets: list[str], now: datetime) -> None:
        given = headers.get(SIGNATURE_HEADER)
        if not given:
            raise WebhookSignatureError("missing signature header")
        if not signature_matches(expected=[sign(body, secret) for secret in secrets], received=[given]):
            raise WebhookSignatureError("signature mismatch")

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ValueError(f"body is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not data.get("id"):
            raise ValueError("event has no id")
        updated = datetime.fromisoformat(data["updated_at"]) if data.get("updated_at") else None
        return InboundEvent(event_id=data["id"], event_type=data.get("type", ""), payload=data, occurred_at=updated)

    def webhook_handlers(self) -> dict[str, Callable[[InboundEvent, Connection], WebhookOutcome]]:
        return {
            "customer.updated": _as_synced("customers"),
            "order.updated": _as_synced("orders"),
            "payment.succeeded": _payment,
            "inventory.updated": _as_synced("inventory"),
            "app.uninstalled": lambda event, connection: WebhookOutcome(disconnect=True, note="app uninstalled"),
            "broken": _broken,
            "flaky": _flaky,
        }


def _as_synced(resource: str) -> Callable[[InboundEvent, Connection], WebhookOutcome]:
    """A handler that reads the event's object as the sync's fake provider reads a `resource` row, with the event's
    time as the row's `updated_at`."""

    def handle(event: InboundEvent, connection: Connection) -> WebhookOutcome:
        raw = {**event.payload["object"], "updated_at": event.payload["updated_at"]}
        return WebhookOutcome(resource, FakeProvider().transform(resource, raw, connection))

    return handle


def _payment(event: InboundEvent, connection: Connection) -> WebhookOutcome:
    obj = event.payload["object"]
    record = PaymentRecord(
        external_id=str(obj["id"]),
        source_updated_at=event.occurred_at,
        provider="fakehooks",
        amount=Decimal(obj["amount"]),
        currency="USD",
        status=obj.get("status", "captured"),
        captured_amount=Decimal(obj["amount"]),
        order_reference=obj.get("order", ""),
    )
    return WebhookOutcome("payments", [record])


def _broken(event: InboundEvent, connection: Connection) -> WebhookOutcome:
    raise BadRecordError("the object has no id", external_id=event.event_id)


def _flaky(event: InboundEvent, connection: Connection) -> WebhookOutcome:
    raise TransientError("provider unavailable", status=503)
