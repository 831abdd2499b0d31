"""Stripe webhooks: signature check, parsing, and the handler table (`shared/providers/stripe.md` §6).

Signature (exactly as stripe-python's `WebhookSignature` does it): the `Stripe-Signature` header is
`t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=...]`, split on `,` and each element on its first `=`. The signed
bytes are `<t>.<raw body>`; the key is the whole endpoint secret string *including* its `whsec_` prefix; the
digest is lowercase hex HMAC-SHA256. Any `v1` may match (Stripe sends several while a rolled secret is still
valid); other schemes (`v0`) are ignored; a timestamp older than 300 s is refused (as the SDK, only the past is
checked). Every comparison is constant-time.

Handlers turn the event's `data.object` into canonical records stamped with the event's `created` time, so an
event delivered late or twice never overwrites a newer state (DESIGN.md rule 2).
"""

from __future__ import annotations

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
    from .client import StripeClient

SIGNATURE_HEADER = "Stripe-Signature"
SCHEME = "v1"
TOLERANCE_SECONDS = 300

Handler = Callable[[InboundEvent, Connection], WebhookOutcome]


def compute_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    return hmac_sha256(secret, timestamp.encode("ascii") + b"." + body).hex()


def parse_signature_header(value: str) -> tuple[int, list[str]]:
    """-> (timestamp, v1 signatures). Raises WebhookSignatureError when there is no integer `t` or no `v1`."""
    items = [part.split("=", 1) for part in value.split(",")]
    pairs = [(item[0].strip(), item[1].strip()) for item in items if len(item) == 2]
    timestamps = [v for k, v in pairs if k == "t"]
    if not timestamps or not timestamps[0].isdigit():
        raise WebhookSignatureError("Stripe-Signature has no timestamp")
    signatures = [v for k, v in pairs if k == SCHEME]
    if not signatures:
        raise WebhookSignatureError("Stripe-Signature has no v1 signature")
    return int(timestamps[0]), signatures


def verify(*, headers: Mapping[str, str], body: bytes, secrets: list[str], now: datetime) -> None:
    value = header_value(headers, SIGNATURE_HEADER)
    if not value:
        raise WebhookSignatureError("missing Stripe-Signature header")
    timestamp, signatures = parse_signature_header(value)
    expected = (compute_signature(secret=secret, timestamp=str(timestamp), body=body) for secret in secrets)
    if not signature_matches(expected=expected, received=signatures):
        raise WebhookSignatureError("no v1 signature matches")
    if timestamp < now.timestamp() - TOLERANCE_SECONDS:
        raise WebhookSignatureError("timestamp outside the tolerance zone")


def parse(*, body: bytes) -> InboundEvent:
    try:
        event = json.loads(body)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise ValueError("body is not a JSON object")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("event has no id")
    if not isinstance(event_type, str) or not event_type:
        raise ValueError("event has no type")
    created = event.get("created")
    occurred_at = (
        mappers.from_timestamp(created) if isinstance(created, int) and not isinstance(created, bool) else None
    )
    return InboundEvent(event_id=event_id, event_type=event_type, payload=event, occurred_at=occurred_at)


# --- handlers -------------------------------------------------------------------------------------------------------


def order_reference_keys(connection: Connection) -> tuple[str, ...]:
    return tuple(connection.config.get("order_reference_keys") or mappers.DEFAULT_ORDER_REFERENCE_KEYS)


def event_object(event: InboundEvent, expected: str) -> dict[str, Any]:
    obj = (event.payload.get("data") or {}).get("object") if isinstance(event.payload, dict) else None
    if not isinstance(obj, dict) or obj.get("object") != expected:
        raise BadRecordError(f"{event.event_type} does not carry a {expected}", external_id=event.event_id)
    return obj


def payment_intent_changed(event: InboundEvent, connection: Connection) -> WebhookOutcome:
    intent = event_object(event, "payment_intent")
    record = mappers.payment_from_intent(intent, updated_at=event.occurred_at, keys=order_reference_keys(connection))
    return WebhookOutcome(resource="payment_intents", records=[record])


def charge_changed(event: InboundEvent, connection: Connection) -> WebhookOutcome:
    charge = event_object(event, "charge")
    record = mappers.payment_from_charge(charge, updated_at=event.occurred_at, keys=order_reference_keys(connection))
    return WebhookOutcome(resource="charges", records=[record])


def customer_changed(event: InboundEvent, connection: Connection) -> WebhookOutcome:
    customer = event_object(event, "customer")
    return WebhookOutcome(
        resource="customers", records=[mappers.customer_record(customer, updated_at=event.occurred_at)]
    )


def dispute_created_handler(client_factory: Callable[[Connection], StripeClient]) -> Handler:
    """`charge.dispute.created` carries a Dispute, not the payment: the charge is read back (with its
    PaymentIntent, for the order reference) so the payment row stays complete. The orders domain has no
    "disputed" payment status, so the dispute itself travels in the outcome's note for the event log."""

    def handle(event: InboundEvent, connection: Connection) -> WebhookOutcome:
        dispute = event_object(event, "dispute")
        charge_id = mappers.object_id(dispute.get("charge"))
        if not charge_id:
            raise BadRecordError("dispute without a charge", external_id=event.event_id)
        charge, _ = client_factory(connection).retrieve("charges", charge_id, expand=["payment_intent"])
        record = mappers.payment_from_charge(
            charge, updated_at=event.occurred_at, keys=order_reference_keys(connection)
        )
        currency = mappers.currency_of(dispute)
        amount = mappers.money(dispute.get("amount") or 0, currency)
        note = (
            f"dispute {dispute.get('id')} opened on {charge_id} for {amount} {currency}"
            f" (reason: {dispute.get('reason') or 'unknown'}, status: {dispute.get('status') or 'unknown'})"
        )
        return WebhookOutcome(resource="charges", records=[record], note=note)

    return handle


def handlers(client_factory: Callable[[Connection], StripeClient]) -> dict[str, Handler]:
    return {
        "payment_intent.succeeded": payment_intent_changed,
        "payment_intent.payment_failed": payment_intent_changed,
        "charge.succeeded": charge_changed,
        "charge.refunded": charge_changed,
        "charge.dispute.created": dispute_created_handler(client_factory),
        "customer.created": customer_changed,
        "customer.updated": customer_changed,
    }
