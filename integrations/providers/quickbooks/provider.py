"""QuickBooks Online (Intuit Accounting API v3) as a Jewelia provider. Facts: `shared/providers/quickbooks.md`.

**Connection.** OAuth 2.0 authorization code (`OAUTH`): app-level client id and secret from the settings
`QUICKBOOKS_CLIENT_ID` / `QUICKBOOKS_CLIENT_SECRET`; the callback's `realmId` (the company) is kept in config as
`realm_id` (`oauth_callback_extras`). Access tokens last an hour; every refresh returns a new refresh token that
must replace the stored one (`refresh_credentials` saves both at once through `connection.save_credentials`,
under the engine's per-integration lock). Config `environment` picks the production or sandbox API host;
`minor_version` overrides the pinned minor version (75).

**Pull** (all through the query endpoint, incremental on `MetaData.LastUpdatedTime`):

| resource    | entity   | writes                                                        |
|-------------|----------|---------------------------------------------------------------|
| customers   | Customer | customers                                                     |
| items       | Item     | products (Category/Group items skipped)                       |
| invoices    | Invoice  | nothing yet: no canonical invoice record (`mappers.invoice_check`) |
| payments    | Payment  | payments, linked to CRM orders (`mappers.invoice_reference`)  |
| purchases   | Purchase | nothing yet: no expense model (`mappers.purchase_check`)      |

Paging is keyset on the update time rather than plain `STARTPOSITION` offsets: each page asks for
`LastUpdatedTime >= <last time seen>` ordered by that time, skipping the rows already read at exactly that
time. A record updated while a pass pages through moves *behind* the cursor's time and is read again later
in the pass, instead of shifting every later row one place and making an offset skip one. The cursor is
`{"from": <time text as QuickBooks sent it>, "skip": <rows at that time already read>}`.

**Push** (`push.py`): customers (Customer), items (ProductRecord -> Item), and orders as invoices or sales
receipts (`invoices`, `sales_receipts`), with `requestid` idempotency and `SyncToken` updates.

**Webhooks**: `webhooks.py`. App-level: one URL and verifier token for every connected company, each delivery
routed to integrations by realmId (`app_webhooks`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import InvalidOperation
from typing import Any

from integrations import oauth_client
from integrations.errors import AuthError, BadRecordError
from integrations.providers.base import (
    AuthKind,
    Capability,
    Category,
    Connection,
    Direction,
    InboundEvent,
    OAuthSpec,
    Page,
    Provider,
    PushRequest,
    PushResult,
    RecordKind,
    Resource,
    WebhookOutcome,
)
from integrations.records import Record

from . import mappers
from . import push as qb_push
from . import query as q
from . import webhooks as qb_webhooks
from .client import BASE_URLS, MINOR_VERSION, RATE_LIMIT, QuickBooksClient

OAUTH = OAuthSpec(
    authorize_url="https://appcenter.intuit.com/connect/oauth2",
    token_url="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
    revoke_url="https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
    scopes=("com.intuit.quickbooks.accounting",),
    client_id_setting="QUICKBOOKS_CLIENT_ID",
    client_secret_setting="QUICKBOOKS_CLIENT_SECRET",
    access_token_lifetime=timedelta(hours=1),
    # 100 days, extended by every use (sheet §3); the token response's x_refresh_token_expires_in is preferred.
    refresh_token_lifetime=timedelta(days=100),
    rotates_refresh_token=True,
    refresh_expiry_fields=("x_refresh_token_expires_in",),  # Intuit's name for it (sheet §3)
)
# Where the sandbox serves the OAuth endpoints under `oauth_base_url` (the real paths of the three URLs above).
OAUTH_PATHS = {
    "authorize_url": "/connect/oauth2",
    "token_url": "/oauth2/v1/tokens/bearer",
    "revoke_url": "/v2/oauth2/tokens/revoke",
}

PULLED = {
    "customers": "Customer",
    "items": "Item",
    "invoices": "Invoice",
    "payments": "Payment",
    "purchases": "Purchase",
}
DEFAULT_PAGE_SIZE = 500
IN_LIST_SIZE = 500  # invoice ids per `Id IN (...)` lookup


class QuickBooksProvider(Provider):
    key = "quickbooks"
    name = "QuickBooks Online"
    category = Category.ACCOUNTING
    auth_kind = AuthKind.OAUTH2
    oauth = OAUTH
    capabilities = frozenset(
        {
            Capability.PULL_CUSTOMERS,
            Capability.PULL_PRODUCTS,
            Capability.PULL_PAYMENTS,
            Capability.PULL_INVOICES,
            Capability.PULL_EXPENSES,
            Capability.PUSH_CUSTOMERS,
            Capability.PUSH_PRODUCTS,
            Capability.PUSH_INVOICES,
            Capability.PUSH_SALES_RECEIPTS,
            Capability.WEBHOOKS,
            Capability.LIVE_CHECK,
            Capability.TOKEN_REFRESH,
        }
    )
    default_base_url = BASE_URLS["production"]
    docs_url = "https://developer.intuit.com/app/developer/qbo/docs/develop"
    rate_limit = RATE_LIMIT
    config_schema = {
        "type": "object",
        "properties": {
            "environment": {
                "type": "string",
                "enum": ["production", "sandbox"],
                "description": "production: quickbooks.api.intuit.com; sandbox: Intuit's sandbox companies.",
            },
            "realm_id": {
                "type": "string",
                "pattern": "^[0-9]{1,32}$",
                "description": "The QuickBooks company id; set by the OAuth callback (realmId).",
            },
            "minor_version": {
                "type": "integer",
                "minimum": MINOR_VERSION,
                "description": f"API minor version; defaults to the pinned {MINOR_VERSION}.",
            },
            "base_url": {
                "type": "string",
                "description": "Only for a local sandbox or a proxy: replaces the API host (host allow-list).",
            },
            "oauth_base_url": {
                "type": "string",
                "description": "Only for a local sandbox: serves the authorize, token and revoke endpoints.",
            },
            "page_size": {"type": "integer", "minimum": 1, "maximum": q.MAX_RESULTS},
            "home_currency": {
                "type": "string",
                "pattern": "^[A-Z]{3}$",
                "description": "The company's home currency (items carry none); default USD.",
            },
            "updated_time_property": {
                "type": "string",
                "enum": list(q.UPDATED_TIME_PROPERTIES),
                "description": "Spelling of the incremental filter property (Intuit's case rules are unconfirmed).",
            },
            "item_type": {"type": "string", "enum": ["NonInventory", "Service"], "description": "Pushed items."},
            "income_account_id": {
                "type": "string",
                "pattern": "^[0-9]{1,32}$",
                "description": "Income account of pushed items (required to push items).",
            },
            "default_item_id": {
                "type": "string",
                "pattern": "^[0-9]{1,32}$",
                "description": "Item for order lines whose product has no QuickBooks item (else the push fails).",
            },
            "shipping_item_id": {
                "type": "string",
                "pattern": "^[0-9]{1,32}$",
                "description": "Item for an order's shipping charge (else default_item_id).",
            },
            "default_customer_id": {
                "type": "string",
                "pattern": "^[0-9]{1,32}$",
                "description": "Customer for orders without one (e.g. a 'Walk-in' customer).",
            },
        },
        "additionalProperties": False,
    }
    credentials_schema = {
        "type": "object",
        "properties": {
            "access_token": {"type": "string"},
            "refresh_token": {"type": "string", "minLength": 1},
            "token_type": {"type": "string"},
            "expires_at": {"type": "string", "description": "When the access token expires (ISO 8601)."},
            "refresh_token_expires_at": {"type": "string", "description": "When the refresh token expires."},
            "scope": {"type": "string"},
        },
        "required": ["refresh_token"],
        "additionalProperties": False,
    }
    # Order matters for the identity map: the engine keys each record kind by the first resource of that kind,
    # so orders are keyed as "invoices" and payments as "payments" (not "purchases").
    resources = (
        Resource("customers", RecordKind.CUSTOMER, direction=Direction.BOTH),
        Resource("items", RecordKind.PRODUCT, direction=Direction.BOTH),
        # Kind ORDER for the push side (an order becomes an invoice); pulled invoices write nothing (see above).
        Resource(
            "invoices",
            RecordKind.ORDER,
            direction=Direction.BOTH,
            depends_on=("customers", "items"),
            push_capability=Capability.PUSH_INVOICES,
        ),
        Resource(
            "sales_receipts",
            RecordKind.ORDER,
            direction=Direction.PUSH,
            depends_on=("customers", "items"),
            push_capability=Capability.PUSH_SALES_RECEIPTS,
        ),
        Resource("payments", RecordKind.PAYMENT, depends_on=("customers",)),
        # Kind PAYMENT only because every resource needs one; purchases write nothing (no expense model yet).
        Resource("purchases", RecordKind.PAYMENT),
    )

    # --- identity helpers -------------------------------------------------------------------------------------------
    def base_url(self, config: dict[str, Any]) -> str:
        """`base_url` when set (a sandbox, checked against the allow-list by the engine), else the API host of
        the configured `environment` (production by default)."""
        if config.get("base_url"):
            return str(config["base_url"]).rstrip("/")
        return BASE_URLS[config.get("environment") or "production"]

    def oauth_spec(self, config: Mapping[str, Any]) -> OAuthSpec:
        """The OAuth endpoints for this integration (overrides `Provider.oauth_spec`): Intuit's, or a local
        sandbox's under `oauth_base_url` (checked against the host allow-list like every user-supplied URL,
        DESIGN.md rule 10)."""
        base = str(config.get("oauth_base_url") or "").rstrip("/")
        if not base:
            return OAUTH
        from integrations.urlsafety import check_base_url

        check_base_url(base)
        return replace(OAUTH, **{name: base + path for name, path in OAUTH_PATHS.items()})  # type: ignore[arg-type]

    def oauth_callback_extras(self, params: Mapping[str, str]) -> dict[str, Any]:
        """QuickBooks sends the company id as `realmId` on the redirect; every API path needs it."""
        realm_id = str(params.get("realmId") or "").strip()
        if not realm_id.isdigit():
            raise ValueError("the QuickBooks callback carries no realmId (company id)")
        return {"realm_id": realm_id}

    # --- hooks ------------------------------------------------------------------------------------------------------
    def client(self, connection: Connection) -> QuickBooksClient:
        return QuickBooksClient(connection)

    def _home_currency(self, connection: Connection) -> str:
        return str(connection.config.get("home_currency") or mappers.DEFAULT_CURRENCY)

    def fetch_page(
        self, connection: Connection, resource: str, *, cursor: dict[str, Any], since: datetime | None
    ) -> Page:
        entity = PULLED[resource]
        client = self.client(connection)
        prop = str(connection.config.get("updated_time_property") or q.UPDATED_TIME_PROPERTY)
        page_size = int(connection.config.get("page_size") or DEFAULT_PAGE_SIZE)
        start = cursor.get("from") or (q.time_text(since) if since is not None else None)
        skip = int(cursor.get("skip") or 0)
        where = [q.condition(prop, ">=", start)] if start else []
        statement = q.select(entity, where=where, order_by=prop, start_position=skip + 1, max_results=page_size)
        rows = client.query_rows(statement, entity)
        if resource == "payments":
            self._attach_invoices(client, rows)

        times = [(row, _row_time(row)) for row in rows]
        known = [t for _, t in times if t is not None]
        done = len(rows) < page_size
        next_cursor: dict[str, Any] = {}
        if not done:
            last_row, last_time = times[-1]
            if last_time is None or (start and last_time == _parse(start)):
                # Every row of the page is at the cursor's own time (or unreadable): move on by offset.
                next_cursor = {"from": start, "skip": skip + len(rows)}
            else:
                text = last_row["MetaData"]["LastUpdatedTime"]
                next_cursor = {"from": text, "skip": sum(1 for t in known if t == last_time)}
        return Page(records=rows, cursor=next_cursor, done=done, high_watermark=max(known, default=None))

    def _attach_invoices(self, client: QuickBooksClient, payments: list[dict[str, Any]]) -> None:
        """Read the invoices the payments are applied to (a few `Id IN (...)` queries per page, not one read per
        payment) and keep each one's Id and DocNumber on the raw payment, for `invoice_reference`."""
        wanted = sorted({i for p in payments for i in mappers.linked_invoice_ids(p)}, key=int)
        found: dict[str, dict[str, Any]] = {}
        for offset in range(0, len(wanted), IN_LIST_SIZE):
            chunk = wanted[offset : offset + IN_LIST_SIZE]
            statement = q.select("Invoice", where=[q.within("Id", chunk)], max_results=len(chunk))
            for invoice in client.query_rows(statement, "Invoice"):
                found[mappers.object_id(invoice)] = {"Id": invoice.get("Id"), "DocNumber": invoice.get("DocNumber")}
        for payment in payments:
            ids = mappers.linked_invoice_ids(payment)
            payment[mappers.INVOICES_KEY] = {i: found[i] for i in ids if i in found}

    def transform(self, resource: str, raw: dict[str, Any], connection: Connection) -> list[Record]:
        external_id = self.external_id(resource, raw)
        if not isinstance(raw, dict):
            raise BadRecordError(f"QuickBooks {resource} record is not an object", external_id=external_id)
        home = self._home_currency(connection)
        try:
            if resource == "customers":
                return [mappers.customer_record(raw)]
            if resource == "items":
                return list(mappers.product_records(raw, home_currency=home))
            if resource == "payments":
                return list(mappers.payment_records(raw, home_currency=home))
            if resource == "invoices":
                return mappers.invoice_check(raw, home_currency=home)
            if resource == "purchases":
                return mappers.purchase_check(raw, home_currency=home)
        except BadRecordError as exc:
            exc.external_id, exc.payload = external_id, raw
            exc.message = f"QuickBooks {resource} {external_id}: {exc.message}"
            exc.args = (exc.message,)
            raise
        except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
            reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
            raise BadRecordError(
                f"QuickBooks {resource} {external_id}: {reason}", external_id=external_id, payload=raw
            ) from exc
        raise KeyError(resource)

    def external_id(self, resource: str, raw: dict[str, Any]) -> str:
        return mappers.object_id(raw)

    def fetch_record(self, connection: Connection, resource: str, external_id: str) -> dict[str, Any] | None:
        return self._read(self.client(connection), resource, external_id)

    def _read(self, client: QuickBooksClient, resource: str, external_id: str) -> dict[str, Any] | None:
        raw = client.read(PULLED[resource], external_id)
        if raw is not None and resource == "payments":
            self._attach_invoices(client, [raw])
        return raw

    def check_connection(self, connection: Connection) -> None:
        self.client(connection).query(q.count("Customer"))

    # --- OAuth ------------------------------------------------------------------------------------------------------
    def refresh_credentials(self, connection: Connection) -> dict[str, Any] | None:
        """The refresh-token grant (HTTP Basic with the app's client id and secret). Intuit may return a new
        refresh token on any refresh and the old one then stops working, so the new access *and* refresh
        tokens, with both expiry times, are saved together before anything else can fail. `invalid_grant`
        (revoked, expired, or an old token used again) is an `AuthError`: only reconnecting helps."""
        spec = self.oauth_spec(connection.config)
        try:
            tokens = oauth_client.refresh_token(spec, str(connection.credentials.get("refresh_token") or ""))
        except AuthError as exc:
            raise AuthError(f"QuickBooks: {exc.message}", status=exc.status, details=exc.details) from None
        credentials = {**connection.credentials, **tokens.as_credentials()}
        hard_expiry = _hard_refresh_expiry(tokens.raw, now=datetime.now(UTC))
        rolling = _parse(credentials.get("refresh_token_expires_at"))
        if hard_expiry is not None and (rolling is None or hard_expiry < rolling):
            credentials["refresh_token_expires_at"] = hard_expiry.isoformat()
        connection.save_credentials(credentials)
        return credentials

    def revoke_credentials(self, connection: Connection) -> None:
        """Revoke the grant at Intuit (disconnect; overrides `Provider.revoke_credentials`, whose RFC 7009 form
        Intuit does not take). Intuit's revoke endpoint takes a JSON body
        `{"token": <refresh or access token>}` (sheet §3); revoking the refresh token ends the whole grant."""
        token = str(connection.credentials.get("refresh_token") or connection.credentials.get("access_token") or "")
        if token:
            oauth_client.revoke_token(self.oauth_spec(connection.config), token, json_body=True)

    # --- push -------------------------------------------------------------------------------------------------------
    def push(self, connection: Connection, request: PushRequest) -> PushResult:
        """Create or update one customer, item, invoice or sales receipt: `requestid` idempotency, a DocNumber
        lookup so an order never becomes two invoices, sparse `SyncToken` updates re-read once on a stale-object
        fault, ValidationFaults as `BadRecordError`. The rules are in `push.py`."""
        return qb_push.push(self.client(connection), connection.config, request)

    # --- webhooks (`webhooks.py`) ---------------------------------------------------------------------------------
    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes, secrets: list[str], now: datetime) -> None:
        qb_webhooks.verify(headers=headers, body=body, secrets=secrets)

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        return qb_webhooks.parse(body=body)

    # One webhook URL and verifier token per Intuit app, for every connected company (sheet §6; `webhooks.py`,
    # "Realms"): the provider-level receiver routes each company's changes by realmId.
    app_webhooks = True
    app_webhook_secrets_setting = "QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS"

    def integration_account_id(self, config: Mapping[str, Any]) -> str:
        """The company (realmId) the OAuth callback stored in config as `realm_id`."""
        return str(config.get("realm_id") or "").strip()

    def split_webhook_by_account(self, event: InboundEvent) -> list[InboundEvent]:
        return qb_webhooks.split_by_realm(event)

    def webhook_account_id(self, event: InboundEvent) -> str:
        return qb_webhooks.realm_of(event)

    def webhook_handlers(self) -> dict[str, Callable[[InboundEvent, Connection], WebhookOutcome]]:
        handle = qb_webhooks.handler(client_factory=self.client, fetch=self._read, transform=self.transform)
        return dict.fromkeys(qb_webhooks.handled_types(), handle)


def _parse(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _row_time(row: Any) -> datetime | None:
    meta = row.get("MetaData") if isinstance(row, dict) else None
    value = meta.get("LastUpdatedTime") if isinstance(meta, dict) else None
    return _parse(value)


def _hard_refresh_expiry(raw: Mapping[str, Any], *, now: datetime) -> datetime | None:
    """The refresh token's hard expiry, if the token response states one. Intuit announced (Nov 2025) a maximum
    validity of five years and a new response field stating it, but the field's name is unconfirmed (sheet §3),
    so the names read are the setting `QUICKBOOKS_REFRESH_TOKEN_EXPIRY_FIELDS`: a number is seconds from now, a
    string an ISO 8601 time. The earliest of these and the rolling expiry is kept."""
    from django.conf import settings

    found = []
    for name in getattr(settings, "QUICKBOOKS_REFRESH_TOKEN_EXPIRY_FIELDS", []) or []:
        value = raw.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            found.append(now + timedelta(seconds=float(value)))
        elif (parsed := _parse(value)) is not None:
            found.append(parsed)
    return min(found, default=None)
