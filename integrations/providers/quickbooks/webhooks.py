"""QuickBooks webhooks: signature, both payload formats, and the handler that fetches what changed (sheet §6).

**Signature.** `intuit-signature` is base64(HMAC-SHA256(key = the app's verifier token, message = the raw body
bytes)), compared in constant time against every configured secret (current and previous token). Intuit adds no
timestamp, so there is no replay window to check: replays are absorbed by de-duplication and idempotent handlers.

**Formats.** A JSON array is CloudEvents 1.0 (one object per change: `id`, `type` `qbo.<entity>.<verb>.v1`,
`intuitentityid`, `intuitaccountid` = realmId, `time`); an object with `eventNotifications` is the legacy format
(per realm: `dataChangeEvent.entities[]` with `name`, `id`, `operation`, `lastUpdated`). Both become the same
list of *changes*, each a dict:

    {"key": ..., "type": "qbo.invoice.created.v1", "realm_id": "310687", "entity": "Invoice",
     "entity_id": "1234", "operation": "created", "occurred_at": "2025-09-10T21:31:25.179851+00:00"}

`key` is the change's de-duplication id: the CloudEvents `id`, or for a legacy change (which has none)
`legacy:` + SHA-256 of `realmId|name|id|operation|lastUpdated` (sheet §6). A legacy operation is spelled as the
CloudEvents verb (Create -> created, Update -> updated, Delete -> deleted, Merge -> merged, Void -> voided,
Emailed -> emailed), so one change type means the same in both formats. Only `created` is a confirmed
CloudEvents verb; the others are 3rd-party extrapolations, which is why handling never depends on the verb: a
handler reads the entity as it is now and reports it gone if QuickBooks no longer has it.

**One delivery, many changes.** `parse` returns one `InboundEvent` per delivery, its payload
`{"format": "cloudevents"|"legacy", "changes": [...]}`:

- a delivery with one change (the usual case, and every example of the sheet) gets that change's `key` as
  `event_id` and its `type` as `event_type`;
- a delivery with several changes gets `delivery:` + SHA-256 of its sorted change keys as `event_id` (the same
  delivery retried is de-duplicated) and the type `qbo.changes.v1`.

The handler is the same function for every type, so a delivery of several changes is processed as one event
(handlers are idempotent: they read current state, and the writers never let an older version win).

**Realms.** Intuit has one webhook URL and one verifier token per app and environment; a delivery can carry
changes of several companies. The provider-level receiver (`POST /api/webhooks/providers/quickbooks/`, verified
with `QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS`) splits a delivery per realm (`split_by_realm`: one event per company,
made by `delivery_event` exactly as if that company's changes had come alone, so its id is the one the
per-integration URL would store) and stores each part for the integration whose config `realm_id` is that realm.
The handler still only touches changes whose realm is the integration's `realm_id` and notes the others, which
matters for a delivery to a per-integration URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
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

if TYPE_CHECKING:
    from .client import QuickBooksClient

SIGNATURE_HEADER = "intuit-signature"
BATCH_TYPE = "qbo.changes.v1"
# Entities the provider pulls, by CloudEvents spelling (lower case) -> (QuickBooks entity, resource).
ENTITIES = {
    "customer": ("Customer", "customers"),
    "item": ("Item", "items"),
    "invoice": ("Invoice", "invoices"),
    "payment": ("Payment", "payments"),
    "purchase": ("Purchase", "purchases"),
}
LEGACY_VERBS = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "merge": "merged",
    "void": "voided",
    "emailed": "emailed",
}
VERBS = tuple(LEGACY_VERBS.values())
MAX_CHANGES = 1000  # a delivery with more is refused as unparsable (stored failed, nothing lost)

Handler = Callable[[InboundEvent, Connection], WebhookOutcome]


def compute_signature(*, secret: str, body: bytes) -> str:
    return base64.b64encode(hmac_sha256(secret, body)).decode("ascii")


def verify(*, headers: Mapping[str, str], body: bytes, secrets: list[str]) -> None:
    value = header_value(headers, SIGNATURE_HEADER)
    if not value:
        raise WebhookSignatureError("missing intuit-signature header")
    expected = (compute_signature(secret=secret, body=body) for secret in secrets)
    if not signature_matches(expected=expected, received=[value.strip()]):
        raise WebhookSignatureError("intuit-signature does not match")


# --- parsing ---------------------------------------------------------------------------------------------------------
def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} has no time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} has an unreadable time {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(value: Any, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} is missing")
    return value.strip()


def change_type(entity: str, verb: str) -> str:
    return f"qbo.{entity.lower()}.{verb}.v1"


def _cloudevent_change(event: Any, index: int) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        raise ValueError(f"CloudEvent {index} is not an object")
    event_id = _text(event.get("id"), f"CloudEvent {index} id")
    event_type = _text(event.get("type"), f"CloudEvent {event_id} type")
    parts = event_type.split(".")
    if len(parts) != 4 or parts[0] != "qbo":
        raise ValueError(f"CloudEvent {event_id} has an unknown type {event_type!r}")
    entity_key = parts[1].lower()
    return {
        "key": event_id,
        "type": event_type,
        "realm_id": _text(event.get("intuitaccountid"), f"CloudEvent {event_id} intuitaccountid"),
        "entity": ENTITIES.get(entity_key, (entity_key.capitalize(), ""))[0],
        "entity_id": _text(event.get("intuitentityid"), f"CloudEvent {event_id} intuitentityid"),
        "operation": parts[2],
        "occurred_at": _time(event.get("time"), f"CloudEvent {event_id}").isoformat(),
    }


def _legacy_changes(notifications: Any) -> list[dict[str, Any]]:
    if not isinstance(notifications, list):
        raise ValueError("eventNotifications is not a list")
    changes = []
    for notification in notifications:
        if not isinstance(notification, Mapping):
            raise ValueError("an event notification is not an object")
        realm_id = _text(notification.get("realmId"), "realmId")
        data = notification.get("dataChangeEvent")
        entities = data.get("entities") if isinstance(data, Mapping) else None
        if not isinstance(entities, list):
            raise ValueError(f"realm {realm_id}: dataChangeEvent.entities is missing")
        for entity in entities:
            if not isinstance(entity, Mapping):
                raise ValueError(f"realm {realm_id}: an entity change is not an object")
            name = _text(entity.get("name"), "entity name")
            entity_id = _text(entity.get("id"), f"{name} id")
            operation = _text(entity.get("operation"), f"{name} {entity_id} operation")
            last_updated = _text(entity.get("lastUpdated"), f"{name} {entity_id} lastUpdated")
            verb = LEGACY_VERBS.get(operation.lower(), operation.lower())
            digest = hashlib.sha256(f"{realm_id}|{name}|{entity_id}|{operation}|{last_updated}".encode()).hexdigest()
            change = {
                "key": f"legacy:{digest}",
                "type": change_type(name, verb),
                "realm_id": realm_id,
                "entity": name,
                "entity_id": entity_id,
                "operation": verb,
                "occurred_at": _time(last_updated, f"{name} {entity_id}").isoformat(),
            }
            if entity.get("deletedId"):
                change["deleted_id"] = str(entity["deletedId"])
            changes.append(change)
    return changes


def parse(*, body: bytes) -> InboundEvent:
    try:
        data = json.loads(body)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if isinstance(data, list):
        body_format = "cloudevents"
        changes = [_cloudevent_change(event, index) for index, event in enumerate(data)]
    elif isinstance(data, dict) and "eventNotifications" in data:
        body_format = "legacy"
        changes = _legacy_changes(data["eventNotifications"])
    else:
        raise ValueError("body is neither a CloudEvents array nor an eventNotifications object")
    if not changes:
        raise ValueError("the delivery carries no changes")
    if len(changes) > MAX_CHANGES:
        raise ValueError(f"the delivery carries {len(changes)} changes, more than {MAX_CHANGES}")
    return delivery_event(body_format, changes)


def delivery_event(body_format: str, changes: list[dict[str, Any]]) -> InboundEvent:
    occurred = max(datetime.fromisoformat(change["occurred_at"]) for change in changes)
    payload = {"format": body_format, "changes": changes}
    if len(changes) == 1:
        return InboundEvent(
            event_id=changes[0]["key"], event_type=changes[0]["type"], payload=payload, occurred_at=occurred
        )
    digest = hashlib.sha256("\n".join(sorted(change["key"] for change in changes)).encode()).hexdigest()
    return InboundEvent(event_id=f"delivery:{digest}", event_type=BATCH_TYPE, payload=payload, occurred_at=occurred)


def split_by_realm(event: InboundEvent) -> list[InboundEvent]:
    """One event per company (realm) of a delivery, in first-seen order, each carrying that company's changes
    in their order (a one-realm delivery comes back as an equal event)."""
    payload = event.payload if isinstance(event.payload, Mapping) else {}
    by_realm: dict[str, list[dict[str, Any]]] = {}
    for change in payload.get("changes") or []:
        by_realm.setdefault(str(change["realm_id"]), []).append(change)
    return [delivery_event(str(payload.get("format", "")), changes) for changes in by_realm.values()]


def realm_of(event: InboundEvent) -> str:
    """The one company (realm) all changes of `event` belong to."""
    payload = event.payload if isinstance(event.payload, Mapping) else {}
    realms = {
        str(change.get("realm_id") or "") for change in payload.get("changes") or [] if isinstance(change, Mapping)
    }
    if len(realms) != 1 or "" in realms:
        raise ValueError(f"event {event.event_id} does not belong to exactly one company: {sorted(realms)}")
    return realms.pop()


# --- handling ---------------------------------------------------------------------------------------------------------
def handler(
    *,
    client_factory: Callable[[Connection], QuickBooksClient],
    fetch: Callable[[QuickBooksClient, str, str], dict[str, Any] | None],
    transform: Callable[[str, dict[str, Any], Connection], list],
) -> Handler:
    """The one handler for every QuickBooks change type: for each change of this integration's company and of
    an entity the provider pulls, read the object as it is now (`fetch(client, resource, id)`) and transform it
    as the sync would; an object QuickBooks no longer has (deleted, merged away) is noted, not an error."""

    def handle(event: InboundEvent, connection: Connection) -> WebhookOutcome:
        payload = event.payload if isinstance(event.payload, Mapping) else {}
        changes = payload.get("changes")
        if not isinstance(changes, list) or not changes:
            raise BadRecordError("the event carries no changes", external_id=event.event_id)
        realm_id = str(connection.config.get("realm_id") or "")
        client = None
        records: list = []
        resources: set[str] = set()
        notes: list[str] = []
        for change in changes:
            if not isinstance(change, Mapping):
                raise BadRecordError("a change is not an object", external_id=event.event_id)
            label = f"{change.get('entity')} {change.get('entity_id')} {change.get('operation')}"
            if str(change.get("realm_id")) != realm_id:
                notes.append(f"{label}: company {change.get('realm_id')} is not this integration's")
                continue
            resource = ENTITIES.get(str(change.get("entity", "")).lower(), ("", ""))[1]
            if not resource:
                notes.append(f"{label}: not synced")
                continue
            client = client or client_factory(connection)
            raw = fetch(client, resource, str(change.get("entity_id")))
            if raw is None:
                notes.append(f"{label}: QuickBooks no longer has it")
                continue
            resources.add(resource)
            records.extend(transform(resource, raw, connection))
        return WebhookOutcome(
            resource=resources.pop() if len(resources) == 1 else "",
            records=records,
            note="; ".join(notes)[:400],
        )

    return handle


def handled_types() -> list[str]:
    """Every change type routed to the handler: the pulled entities x the verbs of both formats, plus the
    several-changes delivery type."""
    return [change_type(entity, verb) for entity in ENTITIES for verb in VERBS] + [BATCH_TYPE]
