"""Stripe: card and online payments for jewelry orders, their refunds and disputes, and Stripe Customers.

Sync design (`shared/providers/stripe.md` §4). Stripe has no "updated since" filter: lists can only be
filtered by `created`, and changes to existing objects are visible only through the Events API, which keeps
30 days. Each resource (customers, payment_intents, charges, refunds) therefore reads two feeds in one pass,
resumable page by page from the saved cursor:

1. **events**: `GET /v1/events?types[]=...&created[gte]=<since>` for the resource's event types. An event's
   `data.object` is the object as it was when the event happened, so its record is stamped with the event's
   `created` time: the writers' ordering rule then keeps the newest version even though the feed (like every
   Stripe list) runs newest first. Refund and dispute events carry a Refund or a Dispute, not the payment: the
   pass reads their charge back once per page and writes the charge as it is now.
2. **objects**: `GET /v1/<resource>?created[gte]=<since>` for objects created since the last run.

Objects read from a list (or read back) are the state at the time of the response, so their records are
stamped with that time, taken from the response's `Date` header (Stripe's clock, like event times) and carried
on the raw object under `_jewelia_observed_at`: a webhook delivered late with an older event is then refused
by the writers' ordering rule instead of undoing a newer snapshot.

`since` is the previous pass's start minus the lookback, so everything that happened while a pass was running
is read again by the next one (idempotently). Events come first so a snapshot read later in the same pass
is never older than an event read in it. When `since` is older than the Events window (29 days, one day short
of Stripe's 30 to be safe) the events feed is skipped and a warning logged: objects created since then are
still read, and refunds on old payments still arrive through the refunds list, but other changes to old
objects (a capture, a refund's status) are only recovered by a full resync (`since=None`: every object
listed, no events needed as each listing is current).

The engine computes `since` only for `CursorStyle.UPDATED_AT` resources; the pair of feeds above gives
exactly that "changed since" meaning, so the resources declare it.

Payments: a PaymentIntent and its charges are one CRM payment under the PaymentIntent id (see `mappers`), so
the four payment feeds all update the same `orders.Payment` row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from integrations.errors import BadRecordError, PermanentError
from integrations.http import HttpResponse
from integrations.providers.base import (
    AuthKind,
    Capability,
    Category,
    Connection,
    CursorStyle,
    InboundEvent,
    Page,
    Provider,
    RecordKind,
    Resource,
    WebhookOutcome,
)
from integrations.records import Record

from . import mappers, webhooks
from .client import DEFAULT_BASE_URL, MAX_LIMIT, TEST_RATE_LIMIT, StripeClient

logger = logging.getLogger("jewelia.integrations.stripe")

EVENTS_WINDOW = timedelta(days=29)
OBSERVED_AT = "_jewelia_observed_at"  # set on raw objects by fetch_page: when (Unix seconds) they were read
LOOKBACK = timedelta(minutes=10)  # list endpoints are eventually consistent; also absorbs clock skew


@dataclass(frozen=True)
class Feed:
    """How one resource is read: its list endpoint, what to expand there, and the events that change it."""

    path: str
    expand: tuple[str, ...]
    event_types: tuple[str, ...]


FEEDS: dict[str, Feed] = {
    "customers": Feed("/v1/customers", (), ("customer.created", "customer.updated")),
    "payment_intents": Feed(
        "/v1/payment_intents",
        ("data.latest_charge",),
        (
            "payment_intent.succeeded",
            "payment_intent.payment_failed",
            "payment_intent.canceled",
            "payment_intent.processing",
        ),
    ),
    "charges": Feed(
        "/v1/charges",
        ("data.payment_intent",),
        (
            "charge.succeeded",
            "charge.failed",
            "charge.refunded",
            "charge.dispute.created",
            "charge.dispute.updated",
            "charge.dispute.closed",
        ),
    ),
    "refunds": Feed(
        "/v1/refunds",
        ("data.charge", "data.charge.payment_intent"),
        ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated"),
    ),
}

# Objects that only point at the payment they changed: the pass reads the charge back.
POINTER_OBJECTS = frozenset({"refund", "dispute"})


class StripeProvider(Provider):
    key = "stripe"
    name = "Stripe"
    category = Category.PAYMENTS
    auth_kind = AuthKind.API_KEY
    capabilities = frozenset(
        {Capability.PULL_CUSTOMERS, Capability.PULL_PAYMENTS, Capability.WEBHOOKS, Capability.LIVE_CHECK}
    )
    default_base_url = DEFAULT_BASE_URL
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "base_url": {
                "type": "string",
                "format": "uri",
                "description": "Only for a local sandbox; must be an allowed host.",
            },
            "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            "order_reference_keys": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 40},
                "minItems": 1,
                "maxItems": 10,
                "description": "PaymentIntent/charge metadata keys holding the CRM order number, tried in order "
                "(default: jewelia_order, order_number, order_id, order_reference).",
            },
        },
        "additionalProperties": False,
    }
    credentials_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "api_key": {
                "type": "string",
                "pattern": "^(sk|rk)_(test|live)_[A-Za-z0-9_]+$",
                "description": "A secret key, or better a restricted key (rk_...) with read access to "
                "Customers, PaymentIntents, Charges, Refunds, Disputes and Events.",
            }
        },
        "required": ["api_key"],
        "additionalProperties": False,
    }
    resources = (
        Resource("customers", RecordKind.CUSTOMER, cursor_style=CursorStyle.UPDATED_AT, lookback=LOOKBACK),
        Resource(
            "payment_intents",
            RecordKind.PAYMENT,
            cursor_style=CursorStyle.UPDATED_AT,
            lookback=LOOKBACK,
            depends_on=("customers",),
        ),
        Resource(
            "charges",
            RecordKind.PAYMENT,
            cursor_style=CursorStyle.UPDATED_AT,
            lookback=LOOKBACK,
            depends_on=("customers", "payment_intents"),
        ),
        Resource(
            "refunds",
            RecordKind.PAYMENT,
            cursor_style=CursorStyle.UPDATED_AT,
            lookback=LOOKBACK,
            depends_on=("charges",),
        ),
    )
    rate_limit = TEST_RATE_LIMIT  # the client uses the live-mode limit for sk_live_/rk_live_ keys
    docs_url = "https://docs.stripe.com/api"

    def __init__(self, *, now: Callable[[], datetime] | None = None):
        self._now = now or (lambda: datetime.now(UTC))

    # --- client and sync ------------------------------------------------------------------------------------------
    def client(self, connection: Connection) -> StripeClient:
        return StripeClient(connection)

    def check_connection(self, connection: Connection) -> None:
        self.client(connection).list_page("/v1/customers", limit=1)

    def fetch_page(
        self, connection: Connection, resource: str, *, cursor: dict[str, Any], since: datetime | None
    ) -> Page:
        feed = FEEDS[resource]
        state = dict(cursor) if cursor else self._pass_start(resource, since)
        client = self.client(connection)
        limit = int(connection.config.get("page_size") or MAX_LIMIT)
        phase = state["phases"][state["phase"]]
        created = {"gte": int(since.timestamp())} if since is not None else None
        if phase == "events":
            path, params = "/v1/events", {"types": list(feed.event_types), "created": created}
        else:
            path, params = feed.path, {"created": created, "expand": list(feed.expand)}
        envelope, response = client.list_page(path, limit=limit, starting_after=state.get("after"), params=params)
        if state.get("started") is None:
            # The pass's start on Stripe's own clock (its `Date` header): the next pass reads from there.
            state["started"] = self._observed(response)
        observed = self._observed(response)
        if phase == "events":
            records = self._resolve_pointers(client, envelope["data"])
        else:
            records = [{**obj, OBSERVED_AT: observed} for obj in envelope["data"]]

        data = envelope["data"]
        if envelope["has_more"] and data:
            state["after"] = str(data[-1]["id"])
        else:
            state["phase"], state["after"] = state["phase"] + 1, None
        done = state["phase"] >= len(state["phases"])
        return Page(
            records=records,
            cursor={} if done else state,
            done=done,
            high_watermark=datetime.fromtimestamp(state["started"], tz=UTC),
        )

    def _pass_start(self, resource: str, since: datetime | None) -> dict[str, Any]:
        now = self._now()
        if since is None:
            phases = ["objects"]
        elif since >= now - EVENTS_WINDOW:
            phases = ["events", "objects"]
        else:
            phases = ["objects"]
            logger.warning(
                "stripe %s: last sync point %s is older than the Events API window; changes to objects created "
                "before it are not visible: run a full resync to recover them",
                resource,
                since.isoformat(),
            )
        return {"phases": phases, "phase": 0, "after": None, "started": None}

    def _resolve_pointers(self, client: StripeClient, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Events whose object is a Refund or a Dispute are replaced by their charge as it is now (read once
        per charge per page, with its PaymentIntent for the order reference), stamped with the time of that
        read."""
        records: list[dict[str, Any]] = []
        fetched: dict[str, dict[str, Any]] = {}
        for event in events:
            obj = (event.get("data") or {}).get("object") or {}
            if obj.get("object") not in POINTER_OBJECTS:
                records.append(event)
                continue
            charge_id = mappers.object_id(obj.get("charge"))
            if not charge_id:
                records.append(event)  # transform records it as a failure, with the event as payload
                continue
            if charge_id not in fetched:
                charge, response = client.retrieve("charges", charge_id, expand=["payment_intent"])
                fetched[charge_id] = {**charge, OBSERVED_AT: self._observed(response)}
                records.append(fetched[charge_id])
        return records

    def transform(self, resource: str, raw: dict[str, Any], connection: Connection) -> list[Record]:
        """Events, and objects read from a list or read back, into records stamped with the event's time or the
        time they were read (see the module docstring). Whatever is wrong with a payload fails this record
        alone, under its payment id."""
        try:
            return self._transform(resource, raw, connection)
        except BadRecordError as exc:
            exc.external_id = self.external_id(resource, raw) or exc.external_id
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            external_id = self.external_id(resource, raw)
            raise BadRecordError(
                f"Stripe {resource} {external_id}: {type(exc).__name__}: {exc}", external_id=external_id, payload=raw
            ) from exc

    def _transform(self, resource: str, raw: dict[str, Any], connection: Connection) -> list[Record]:
        if not isinstance(raw, Mapping):
            raise BadRecordError(f"Stripe {resource} record is not an object")
        updated_at = mappers.from_timestamp(raw.get(OBSERVED_AT))
        obj: Any = raw
        if raw.get("object") == "event":
            obj = (raw.get("data") or {}).get("object")
            updated_at = mappers.from_timestamp(raw.get("created"))
            if not isinstance(obj, Mapping):
                raise BadRecordError("event without data.object", external_id=str(raw.get("id", "")))
        keys = webhooks.order_reference_keys(connection)
        kind = obj.get("object")
        if kind == "customer":
            return [mappers.customer_record(obj, updated_at=updated_at)]
        if kind == "payment_intent":
            return [mappers.payment_from_intent(obj, updated_at=updated_at, keys=keys)]
        if kind == "charge":
            return [mappers.payment_from_charge(obj, updated_at=updated_at, keys=keys)]
        if kind in POINTER_OBJECTS and isinstance(obj.get("charge"), Mapping):
            return [mappers.payment_from_charge(obj["charge"], updated_at=updated_at, keys=keys)]
        raise BadRecordError(
            f"cannot read a Stripe {kind!r} as {resource}", external_id=self.external_id(resource, raw)
        )

    def external_id(self, resource: str, raw: dict[str, Any]) -> str:
        if not isinstance(raw, Mapping):
            return ""
        obj = raw
        if raw.get("object") == "event":
            obj = (raw.get("data") or {}).get("object") or {}
        if not isinstance(obj, Mapping):
            return ""
        if obj.get("object") == "customer":
            return str(obj.get("id") or "")
        return mappers.payment_id(obj)

    def fetch_record(self, connection: Connection, resource: str, external_id: str) -> dict[str, Any] | None:
        """The object as it is now: a customer, or a payment read through its PaymentIntent (`pi_...`, with the
        latest charge) or, for a payment without one, its charge (`ch_...`)."""
        if external_id.startswith("cus_"):
            path, expand = "customers", []
        elif external_id.startswith("pi_"):
            path, expand = "payment_intents", ["latest_charge"]
        elif external_id.startswith("ch_"):
            path, expand = "charges", ["payment_intent"]
        else:
            return None
        try:
            obj, response = self.client(connection).retrieve(path, external_id, expand=expand)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        return None if obj.get("deleted") else {**obj, OBSERVED_AT: self._observed(response)}

    def _observed(self, response: HttpResponse) -> int:
        """When a response was produced, on Stripe's clock (its `Date` header; ours if it sent none)."""
        return int((response.server_date or self._now()).timestamp())

    # --- webhooks -------------------------------------------------------------------------------------------------
    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes, secrets: list[str], now: datetime) -> None:
        webhooks.verify(headers=headers, body=body, secrets=secrets, now=now)

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        return webhooks.parse(body=body)

    def webhook_handlers(self) -> dict[str, Callable[[InboundEvent, Connection], WebhookOutcome]]:
        return webhooks.handlers(client_factory=self.client)
