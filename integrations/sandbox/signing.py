"""Correctly signed webhook deliveries, as Stripe, Shopify and Intuit (QuickBooks) send them, for tests,
`seed_demo` and the benchmark.

The signing here is written from the fact sheets (`shared/providers/stripe.md` §6, `shopify.md` §6,
`quickbooks.md` §6) on purpose rather than imported from the providers' verifiers: a sender that shared the
verifier's code would agree with any bug in it. Both sides are pinned to the sheets' test vectors in the tests.

    body, headers = stripe_delivery(stripe_event("payment_intent.succeeded", intent), secret="whsec_...")
    deliver("http://127.0.0.1:8000/api/webhooks/<integration uuid>/", body=body, headers=headers)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import requests

from integrations.providers.stripe.client import API_VERSION as STRIPE_API_VERSION

STRIPE_USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def sign_stripe(body: bytes, secret: str, t: int) -> str:
    """The `Stripe-Signature` header value: `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the whole
    whsec_ secret>`."""
    digest = hmac.new(secret.encode("utf-8"), f"{t}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def _base64_hmac(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def sign_shopify(body: bytes, secret: str) -> str:
    """The `X-Shopify-Hmac-Sha256` header value: base64 of HMAC-SHA256 of the raw body keyed by the secret."""
    return _base64_hmac(body, secret)


def encode(payload: Any) -> bytes:
    """Compact JSON bytes, as providers send them (the signature covers exactly these bytes)."""
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def stripe_event(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    livemode: bool = False,
) -> dict[str, Any]:
    """An Event envelope around `obj` in Stripe's shape (§7 of the sheet)."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": int(time.time()) if created is None else created,
        "type": event_type,
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": f"req_{uuid.uuid4().hex[:14]}", "idempotency_key": str(uuid.uuid4())},
        "data": {"object": obj},
    }


def stripe_delivery(event: dict[str, Any], secret: str, *, t: int | None = None) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a Stripe delivery of `event`, signed at `t` (now by default)."""
    body = encode(event)
    return body, {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": STRIPE_USER_AGENT,
        "Stripe-Signature": sign_stripe(body, secret, int(time.time()) if t is None else t),
    }


def shopify_delivery(
    payload: dict[str, Any],
    secret: str,
    *,
    topic: str,
    shop_domain: str = "jewelia-demo.myshopify.com",
    api_version: str = "2026-04",
    webhook_id: str | None = None,
    event_id: str | None = None,
    triggered_at: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a Shopify delivery of `payload` on `topic`, with the headers of the sheet's §6."""
    body = encode(payload)
    triggered = (triggered_at or datetime.now(UTC)).astimezone(UTC)
    return body, {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign_shopify(body, secret),
        "X-Shopify-Shop-Domain": shop_domain,
        "X-Shopify-API-Version": api_version,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": triggered.isoformat().replace("+00:00", "Z"),
    }


def deliver(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> requests.Response:
    """POST one delivery to `url` exactly as built (the body bytes are never re-serialised)."""
    return (session or requests).post(url, data=body, headers=headers, timeout=timeout)


# --- QuickBooks (Intuit) ----------------------------------------------------------------------------------------------
# `shared/providers/quickbooks.md` §6: `intuit-signature` = base64(HMAC-SHA256(verifier token, raw body)); the body
# is either the legacy `eventNotifications` object or a JSON array of CloudEvents 1.0 objects.
INTUIT_CLOUDEVENTS_SOURCE = "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU="


def sign_intuit(body: bytes, verifier_token: str) -> str:
    """The `intuit-signature` header value: base64 of HMAC-SHA256 of the raw body keyed by the verifier token (the
    scheme Shopify uses too)."""
    return _base64_hmac(body, verifier_token)


def intuit_legacy_payload(changes: list[dict[str, str]]) -> dict[str, Any]:
    """A legacy delivery: one `eventNotifications` entry per realm, in first-seen order. Each change is
    `{"realm_id", "name", "id", "operation" (Create/Update/Delete/Merge/Void/Emailed), "last_updated"}`, plus
    `deleted_id` for a merge."""
    by_realm: dict[str, list[dict[str, str]]] = {}
    for change in changes:
        entity = {
            "name": change["name"],
            "id": change["id"],
            "operation": change["operation"],
            "lastUpdated": change["last_updated"],
        }
        if change.get("deleted_id"):
            entity["deletedId"] = change["deleted_id"]
        by_realm.setdefault(change["realm_id"], []).append(entity)
    return {
        "eventNotifications": [
            {"realmId": realm, "dataChangeEvent": {"entities": entities}} for realm, entities in by_realm.items()
        ]
    }


def intuit_cloudevent(
    *, realm_id: str, entity: str, entity_id: str, verb: str = "created", time: str | None = None, event_id=None
) -> dict[str, Any]:
    """One CloudEvents 1.0 object as Intuit sends it (type `qbo.<entity lower>.<verb>.v1`, `data` empty)."""
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": INTUIT_CLOUDEVENTS_SOURCE,
        "type": f"qbo.{entity.lower()}.{verb}.v1",
        "datacontenttype": "application/json",
        "time": time or datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "intuitentityid": entity_id,
        "intuitaccountid": realm_id,
        "data": {},
    }


def intuit_delivery(payload: Any, verifier_token: str) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of an Intuit webhook delivery of `payload` (either format)."""
    body = encode(payload)
    return body, {"Content-Type": "application/json", "intuit-signature": sign_intuit(body, verifier_token)}
