"""Stripe objects -> canonical records (`integrations.records`).

Facts from `shared/providers/stripe.md` §4: amounts are integers in the currency's smallest unit, `currency` is
a lowercase ISO code, timestamps are Unix seconds, `metadata` is a string map.

One Stripe payment is one CRM payment. A PaymentIntent (`pi_...`) and the Charge (`ch_...`) it created are two
views of the same money, so both map to a `PaymentRecord` whose `external_id` is the PaymentIntent id; only a
charge made without a PaymentIntent (the legacy Charges API) is its own payment, under its charge id. The
orders domain upserts payments on (provider, external id), so a PaymentIntent event, a charge event and a
refund seen by the sync all update the same row instead of adding a second payment.

Statuses are the orders domain's payment statuses (`orders.models.PaymentRecordStatus`), spelled here as plain
strings because providers never import models: pending, authorized, captured, partially_refunded, refunded,
voided, failed. The charge, when known, is the money truth (captured and refunded amounts); the PaymentIntent
status decides only before a charge exists, and for cancellation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from integrations.errors import BadRecordError
from integrations.records import CustomerRecord, PaymentRecord
from orders.currencies import is_valid_currency, minor_units

PROVIDER = "stripe"

# Metadata keys read, in this order, for the order a payment belongs to. `jewelia_order` is what the CRM's own
# checkout writes (the sheet's example); the others are the names shops commonly use. Overridable per
# integration with the config key `order_reference_keys`.
DEFAULT_ORDER_REFERENCE_KEYS: tuple[str, ...] = ("jewelia_order", "order_number", "order_id", "order_reference")

PENDING = "pending"
AUTHORIZED = "authorized"
CAPTURED = "captured"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
VOIDED = "voided"
FAILED = "failed"

_INTENT_STATUS = {
    "requires_payment_method": PENDING,
    "requires_confirmation": PENDING,
    "requires_action": PENDING,
    "processing": PENDING,
    "requires_capture": AUTHORIZED,
    "canceled": VOIDED,
    "succeeded": CAPTURED,
}


def from_timestamp(value: Any) -> datetime | None:
    """Unix seconds -> aware UTC datetime (None when absent)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRecordError(f"expected Unix seconds, got {value!r}")
    return datetime.fromtimestamp(value, tz=UTC)


def money(amount: Any, currency: str, *, external_id: str = "") -> Decimal:
    """An amount in the smallest currency unit -> Decimal in major units (12500 usd -> 125.00; 5000 jpy -> 5000).

    Minor units follow ISO 4217 (`orders.currencies`), which is what the sheet describes ("cents for USD/EUR;
    zero-decimal currencies such as JPY are whole units").
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise BadRecordError(f"invalid amount {amount!r}", external_id=external_id)
    return Decimal(amount).scaleb(-minor_units(currency))


def currency_of(obj: Mapping[str, Any]) -> str:
    code = str(obj.get("currency") or "").upper()
    if not is_valid_currency(code):
        raise BadRecordError(f"unknown currency {obj.get('currency')!r}", external_id=str(obj.get("id", "")))
    return code


def object_id(value: Any) -> str:
    """An expandable field is either an id string or the expanded object; return the id either way."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def order_reference(*metadatas: Any, keys: Iterable[str] = DEFAULT_ORDER_REFERENCE_KEYS) -> str:
    """The first non-empty value of `keys` in the first metadata map that has one ("" when none does)."""
    keys = tuple(keys)
    for metadata in metadatas:
        if not isinstance(metadata, Mapping):
            continue
        for key in keys:
            value = str(metadata.get(key) or "").strip()
            if value:
                return value
    return ""


def payment_id(obj: Mapping[str, Any]) -> str:
    """The CRM payment id for a PaymentIntent, Charge, Refund or Dispute: its PaymentIntent id when it has one,
    else its charge id (a legacy charge is a payment of its own)."""
    kind = obj.get("object")
    if kind == "payment_intent":
        return str(obj.get("id") or "")
    if kind == "charge":
        return object_id(obj.get("payment_intent")) or str(obj.get("id") or "")
    if kind in ("refund", "dispute"):
        charge = obj.get("charge")
        if isinstance(charge, Mapping):
            return payment_id(charge)
        return object_id(obj.get("payment_intent")) or object_id(charge)
    return str(obj.get("id") or "")


def charge_status(charge: Mapping[str, Any]) -> str:
    status = charge.get("status")
    if status == "failed":
        return FAILED
    if status != "succeeded":
        return PENDING
    captured = charge.get("amount_captured") or 0
    refunded = charge.get("amount_refunded") or 0
    if captured == 0:
        # An authorisation: released (refunded in full without capture) means voided.
        return VOIDED if charge.get("refunded") else AUTHORIZED
    if charge.get("refunded") or refunded >= captured:
        return REFUNDED
    if refunded > 0:
        return PARTIALLY_REFUNDED
    return CAPTURED


def intent_status(intent: Mapping[str, Any]) -> str:
    status = intent.get("status")
    if status == "requires_payment_method" and intent.get("last_payment_error"):
        # After a failed attempt Stripe puts the intent back to requires_payment_method with the error attached
        # (what payment_intent.payment_failed carries).
        return FAILED
    try:
        return _INTENT_STATUS[str(status)]
    except KeyError:
        raise BadRecordError(f"unknown PaymentIntent status {status!r}", external_id=str(intent.get("id"))) from None


def _method(charge: Mapping[str, Any] | None) -> str:
    # `payment_method_details.type` ("card", "klarna", ...) is on every charge; it is not one of the sheet's key
    # fields, so it is read defensively and left empty when absent.
    details = (charge or {}).get("payment_method_details")
    return str(details.get("type") or "") if isinstance(details, Mapping) else ""


def payment_from_charge(
    charge: Mapping[str, Any],
    *,
    updated_at: datetime | None,
    keys: Iterable[str] = DEFAULT_ORDER_REFERENCE_KEYS,
    intent: Mapping[str, Any] | None = None,
) -> PaymentRecord:
    """A payment as its charge shows it. `intent` (or an expanded `charge.payment_intent`) adds the intent's
    metadata for the order reference and its cancellation. Without it (a `charge.*` event carries the intent's
    id only) the order reference comes from the charge's own metadata, usually empty: the payment writer reads
    an empty reference as "unknown" and keeps the order the payment is already linked to."""
    external_id = payment_id(charge)
    if intent is None and isinstance(charge.get("payment_intent"), Mapping):
        intent = charge["payment_intent"]
    currency = currency_of(charge)
    status = charge_status(charge)
    if intent is not None and intent.get("status") == "canceled":
        status = VOIDED
    return PaymentRecord(
        external_id=external_id,
        source_updated_at=updated_at,
        provider=PROVIDER,
        amount=money(charge.get("amount"), currency, external_id=external_id),
        currency=currency,
        status=status,
        method=_method(charge),
        captured_amount=money(charge.get("amount_captured") or 0, currency, external_id=external_id),
        refunded_amount=money(charge.get("amount_refunded") or 0, currency, external_id=external_id),
        order_reference=order_reference((intent or {}).get("metadata"), charge.get("metadata"), keys=keys),
        customer_external_id=object_id(charge.get("customer")) or object_id((intent or {}).get("customer")),
    )


def payment_from_intent(
    intent: Mapping[str, Any], *, updated_at: datetime | None, keys: Iterable[str] = DEFAULT_ORDER_REFERENCE_KEYS
) -> PaymentRecord:
    """A payment as its PaymentIntent shows it. With `latest_charge` expanded (the sync asks for it) the charge
    gives captured and refunded amounts; without it (webhook payloads) the intent's own `amount_received` is
    the captured amount and nothing is refunded yet, which is true at the time the intent event was created."""
    charge = intent.get("latest_charge")
    if isinstance(charge, Mapping) and intent.get("status") != "requires_payment_method":
        return payment_from_charge(charge, updated_at=updated_at, keys=keys, intent=intent)
    external_id = str(intent.get("id") or "")
    currency = currency_of(intent)
    return PaymentRecord(
        external_id=external_id,
        source_updated_at=updated_at,
        provider=PROVIDER,
        amount=money(intent.get("amount"), currency, external_id=external_id),
        currency=currency,
        status=intent_status(intent),
        method=_method(charge if isinstance(charge, Mapping) else None),
        captured_amount=money(intent.get("amount_received") or 0, currency, external_id=external_id),
        refunded_amount=money(0, currency, external_id=external_id),
        order_reference=order_reference(intent.get("metadata"), keys=keys),
        customer_external_id=object_id(intent.get("customer")),
    )


def _address(value: Any, kind: str) -> dict[str, str] | None:
    if not isinstance(value, Mapping) or not any(value.get(k) for k in ("line1", "city", "postal_code", "country")):
        return None
    return {
        "kind": kind,
        "line1": str(value.get("line1") or ""),
        "line2": str(value.get("line2") or ""),
        "city": str(value.get("city") or ""),
        "region": str(value.get("state") or ""),
        "postal_code": str(value.get("postal_code") or ""),
        "country": str(value.get("country") or ""),
    }


def _text(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRecordError(f"{name} is not text: {value!r}", external_id=str(obj.get("id", "")))
    return value.strip()


def customer_record(customer: Mapping[str, Any], *, updated_at: datetime | None) -> CustomerRecord:
    """A Stripe Customer: `address` is the billing address, `shipping.address` the shipping one."""
    external_id = str(customer.get("id") or "")
    if not external_id.startswith("cus_"):
        raise BadRecordError("not a Stripe customer", external_id=external_id)
    shipping = customer.get("shipping")
    addresses = [
        address
        for address in (
            _address(customer.get("address"), "billing"),
            _address(shipping.get("address") if isinstance(shipping, Mapping) else None, "shipping"),
        )
        if address
    ]
    return CustomerRecord(
        external_id=external_id,
        source_updated_at=updated_at,
        name=_text(customer, "name"),
        email=_text(customer, "email"),
        phone=_text(customer, "phone"),
        addresses=addresses,
    )
