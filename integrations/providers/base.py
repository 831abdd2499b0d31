"""The one interface every provider implements (DESIGN.md rule 9, STYLE.md "Connectors").

A provider is a stateless class: identity, category, auth kind, capabilities, config schema, resources, and
hooks that fetch, transform and (later) verify webhooks. An integration is a database row; the engine turns
it into a `Connection` (decrypted credentials, validated config, allowed base URL) before calling a hook, so
providers never import models. Nothing outside `integrations/providers/` names a provider: code asks for a
capability or a resource.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from integrations.http import ProviderHttpClient
    from integrations.records import Record


class Category(StrEnum):
    ACCOUNTING = "accounting"
    ECOMMERCE = "ecommerce"
    EMAIL_MARKETING = "email_marketing"
    PAYMENTS = "payments"
    SHIPPING = "shipping"
    CALENDAR = "calendar"


class AuthKind(StrEnum):
    API_KEY = "api_key"
    ACCESS_TOKEN = "access_token"  # a static token, or one obtained with a client-credentials grant
    OAUTH2 = "oauth2"
    BASIC = "basic"
    NONE = "none"


class Capability(StrEnum):
    PULL_CUSTOMERS = "pull_customers"
    PULL_PRODUCTS = "pull_products"
    PULL_INVENTORY = "pull_inventory"
    PULL_ORDERS = "pull_orders"
    PULL_PAYMENTS = "pull_payments"
    PULL_INVOICES = "pull_invoices"
    PULL_EXPENSES = "pull_expenses"
    PUSH_CUSTOMERS = "push_customers"
    PUSH_PRODUCTS = "push_products"
    PUSH_ORDERS = "push_orders"
    PUSH_INVOICES = "push_invoices"
    PUSH_SALES_RECEIPTS = "push_sales_receipts"
    WEBHOOKS = "webhooks"
    LIVE_CHECK = "live_check"
    TOKEN_REFRESH = "token_refresh"


class Direction(StrEnum):
    PULL = "pull"
    PUSH = "push"
    BOTH = "both"


class CursorStyle(StrEnum):
    UPDATED_AT = "updated_at"  # incremental by the source's "updated since" filter (with a lookback window)
    CREATED = "created"  # only new objects are listable by time; changes come from an events feed
    EVENTS = "events"  # an events/CDC feed
    FULL = "full"  # no incremental filter: every run reads everything


class RecordKind(StrEnum):
    """What local data a resource writes; the engine picks its writer by this, never by provider."""

    CUSTOMER = "customer"
    PRODUCT = "product"
    INVENTORY = "inventory"
    ORDER = "order"
    PAYMENT = "payment"


@dataclass(frozen=True)
class Resource:
    name: str  # "orders", "customers", ...: unique within a provider, used in the API and cursors
    kind: RecordKind
    direction: Direction = Direction.PULL
    cursor_style: CursorStyle = CursorStyle.UPDATED_AT
    lookback: timedelta = timedelta(minutes=5)  # re-read this margin before the cursor: same-timestamp safety
    depends_on: tuple[str, ...] = ()  # resources synced earlier in a run (customers before orders)
    # (Added with the outbox.) The capability pushing to this resource needs; None: the one of its kind
    # (`PUSH_CAPABILITY_BY_KIND`). Set it where a kind has several documents (an order as invoice or receipt).
    push_capability: Capability | None = None


# What pushing a resource of each kind needs when the resource does not name a capability itself.
PUSH_CAPABILITY_BY_KIND = {
    RecordKind.CUSTOMER: Capability.PUSH_CUSTOMERS,
    RecordKind.PRODUCT: Capability.PUSH_PRODUCTS,
    RecordKind.ORDER: Capability.PUSH_ORDERS,
}


@dataclass(frozen=True)
class RateLimit:
    """The provider's documented limit, enforced client-side across all workers (in Redis when configured)."""

    requests: int
    per_seconds: float
    burst: int | None = None


@dataclass
class Connection:
    """Everything a hook may know about one integration. Built by the engine; never a model instance.

    `save_credentials` persists refreshed tokens (encrypted, in the same transaction as any replaced refresh
    token); providers call it from `refresh_credentials` instead of touching the database.

    `refresh` is what the HTTP layer calls once on a 401 (and before a known expiry): the engine sets it to a
    function that takes a per-integration lock, re-reads the stored credentials (another worker may have
    refreshed already), otherwise calls the provider's `refresh_credentials`, and returns the credentials to
    use from now on (also updating `self.credentials`), or None when the credentials cannot be refreshed.
    """

    integration_id: str
    base_url: str
    config: dict[str, Any]
    credentials: dict[str, Any]
    rate_limit_key: str
    save_credentials: Callable[[dict[str, Any]], None] = field(default=lambda creds: None, repr=False)
    refresh: Callable[[], dict[str, Any] | None] = field(default=lambda: None, repr=False)
    rate_limiting: bool = True

    def __repr__(self) -> str:  # never print credentials
        return f"Connection(integration_id={self.integration_id!r}, base_url={self.base_url!r})"


@dataclass
class Page:
    """One page of raw provider records plus the cursor to resume after it.

    `cursor` is an opaque JSON-serialisable dict saved after the page is written; `done` is True on the last
    page. `high_watermark` is the greatest source-updated time seen, for the next incremental run.
    """

    records: list[dict[str, Any]]
    cursor: dict[str, Any]
    done: bool
    high_watermark: datetime | None = None


@dataclass
class InboundEvent:
    """A webhook delivery after verification and parsing.

    `event_id` is the provider's de-duplication id (Stripe event `id`, Shopify `X-Shopify-Webhook-Id`);
    `group_id` an optional id shared by deliveries of one event fanned out to several topics (Shopify
    `X-Shopify-Event-Id`); `occurred_at` when the provider says it happened (for staleness checks).
    """

    event_id: str
    event_type: str
    payload: Any
    occurred_at: datetime | None = None
    group_id: str = ""


@dataclass
class WebhookOutcome:
    """What handling one event means for local data: canonical records to write for `resource` (through the
    same writers the sync uses, so ordering and idempotency rules are identical), and/or `disconnect` when the
    provider says the connection is gone (e.g. Shopify app/uninstalled)."""

    resource: str = ""
    records: list[Record] = field(default_factory=list)
    disconnect: bool = False
    note: str = ""


@dataclass(frozen=True)
class OAuthSpec:
    """How a provider does OAuth 2.0 (authorization code grant). The generic connect flow, token refresh and
    revocation in the integrations app read this; only quirks need provider code.

    Client id and secret are app-level and come from settings named by `client_id_setting` /
    `client_secret_setting` (environment variables), never from the integration row.
    """

    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    client_id_setting: str
    client_secret_setting: str
    revoke_url: str = ""
    pkce: bool = False
    extra_authorize_params: tuple[tuple[str, str], ...] = ()
    access_token_lifetime: timedelta | None = None  # when the token response has no expires_in
    refresh_token_lifetime: timedelta | None = None  # known lifetime: warn staff some days before it runs out
    rotates_refresh_token: bool = False  # the provider issues a new refresh token on every refresh
    # Token-response fields (seconds) with the refresh token's lifetime, besides the common refresh_token_expires_in.
    refresh_expiry_fields: tuple[str, ...] = ()


@dataclass
class PushRequest:
    """One outbound change: `record` is the canonical snapshot of the local object (built by the engine from
    the CRM's rows, provider-independent); `external_id` is set when the object was pushed before (update,
    never a second create); `idempotency_key` is stable across retries of the same outbox row."""

    resource: str
    record: Record
    idempotency_key: str
    external_id: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # per-integration push settings, e.g. document type


@dataclass
class PushResult:
    external_id: str
    version: str = ""  # the provider's object version after the write (QuickBooks SyncToken), if any


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name whatever the mapping's case handling (Django's `request.headers` ignores case, a plain
    dict in a test does not; Shopify documents `X-Shopify-Hmac-Sha256` and `...-SHA256` alike)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def hmac_sha256(secret: str, message: bytes) -> bytes:
    """HMAC-SHA256 of `message` keyed by the UTF-8 bytes of `secret`: the digest every provider's webhook
    signature is built from (Shopify and Intuit send it base64-encoded, Stripe hex-encoded)."""
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def signature_matches(*, expected: Iterable[str], received: Iterable[str]) -> bool:
    """Whether any expected signature (one per configured secret) equals any received one. Every pair is
    compared in constant time, and the comparing goes on after a match, so the time taken does not tell which
    secret or which received signature matched."""
    candidates = [value.encode("utf-8", "replace") for value in received]
    matched = False
    for signature in expected:
        for candidate in candidates:
            matched |= hmac.compare_digest(signature.encode("ascii"), candidate)
    return matched


class WebhookSignatureError(Exception):
    """The delivery is not authentic (bad/missing signature, stale timestamp). The message is for logs only."""


class Provider:
    """Base class. Subclasses set the class attributes and implement the hooks their capabilities need."""

    key: ClassVar[str]
    name: ClassVar[str]
    category: ClassVar[Category]
    auth_kind: ClassVar[AuthKind]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    default_base_url: ClassVar[str] = ""  # may contain {placeholders} filled from config (e.g. {shop})
    config_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}, "additionalProperties": False}
    credentials_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    resources: ClassVar[tuple[Resource, ...]] = ()
    rate_limit: ClassVar[RateLimit | None] = None
    docs_url: ClassVar[str] = ""

    # --- identity helpers ------------------------------------------------------------------------------------
    @classmethod
    def resource(cls, name: str) -> Resource:
        for resource in cls.resources:
            if resource.name == name:
                return resource
        raise KeyError(name)

    @classmethod
    def has(cls, capability: Capability) -> bool:
        return capability in cls.capabilities

    @classmethod
    def push_resources(cls) -> tuple[Resource, ...]:
        """The resources the outbox may push to: direction push or both, and the capability pushing them needs
        (`Resource.push_capability`, else the one of their kind) is declared. Added with the outbox."""
        pushable = []
        for resource in cls.resources:
            if resource.direction not in (Direction.PUSH, Direction.BOTH):
                continue
            capability = resource.push_capability or PUSH_CAPABILITY_BY_KIND.get(resource.kind)
            if capability is not None and capability in cls.capabilities:
                pushable.append(resource)
        return tuple(pushable)

    def base_url(self, config: dict[str, Any]) -> str:
        """The API root for this integration: `config["base_url"]` when set (checked against the host
        allow-list by the engine), else `default_base_url` formatted with the config."""
        return (config.get("base_url") or self.default_base_url.format(**config)).rstrip("/")

    # --- hooks ------------------------------------------------------------------------------------------------
    def client(self, connection: Connection) -> ProviderHttpClient:
        """Return the shared HTTP client set up for this provider's auth headers, rate limit and quirks.

        Receives the connection; returns a `ProviderHttpClient`; raises nothing (no I/O here).
        """
        raise NotImplementedError

    def fetch_page(
        self, connection: Connection, resource: str, *, cursor: dict[str, Any], since: datetime | None
    ) -> Page:
        """Fetch one page of `resource`.

        `cursor` is the dict saved after the previous page of this run (empty on the first page); `since` is the
        incremental lower bound (the previous run's high watermark minus the resource's lookback; None for a
        full sync). Returns a `Page`. Raises `TransientError`/`RateLimitedError` (retry later), `AuthError`
        (credentials rejected after a refresh), `PermanentError`.
        """
        raise NotImplementedError

    def transform(self, resource: str, raw: dict[str, Any], connection: Connection) -> list[Record]:
        """Translate one raw record into canonical records (a product with variants gives one per SKU).

        Returns a list (possibly empty for records we deliberately skip). Raises `BadRecordError` for a record
        that cannot be understood; the engine records it and goes on.
        """
        raise NotImplementedError

    def external_id(self, resource: str, raw: dict[str, Any]) -> str:
        """The provider's stable id for a raw record (used to record failures before transform succeeds)."""
        return str(raw.get("id", ""))

    def fetch_record(self, connection: Connection, resource: str, external_id: str) -> dict[str, Any] | None:
        """Re-read one raw record of `resource` by the id `external_id(resource, raw)` gave for it: how a
        recorded record failure is retried without a full resync (the source may have fixed the record).

        Returns the raw record, ready for `transform`, or None when the provider no longer has it. Raises the
        `ProviderError` family like `fetch_page`. The default raises NotImplementedError: for providers
        without a single-record endpoint the engine re-transforms the stored payload instead.
        (Added alongside the Shopify provider; additive, nothing else in this interface changed.)
        """
        raise NotImplementedError

    def check_connection(self, connection: Connection) -> None:
        """A cheap authenticated call proving the credentials work. Raises a `ProviderError` if not."""
        raise NotImplementedError

    # --- OAuth (auth kind OAUTH2) and push (capabilities PUSH_*) ----------------------------------------------
    oauth: ClassVar[OAuthSpec | None] = None

    def oauth_spec(self, config: Mapping[str, Any]) -> OAuthSpec:
        """The OAuth endpoints for one integration, given its config. The default is the class's `oauth`;
        providers whose endpoints depend on the integration (a regional host, a local sandbox) override it and
        check any user-supplied URL against the host allow-list. Raises `PermanentError` when the provider does
        not use OAuth. (Promoted to the base class with the generic connect flow; additive.)"""
        if self.oauth is None:
            from integrations.errors import PermanentError

            raise PermanentError(f"{self.name} does not connect with OAuth 2.0")
        return self.oauth

    def revoke_credentials(self, connection: Connection) -> None:
        """Revoke the integration's grant at the provider (disconnect). The default sends the refresh token
        (else the access token) to the spec's revoke endpoint as an RFC 7009 form, and does nothing when the spec
        has no revoke endpoint or no token is stored. Returns None; raises the `ProviderError` family (a token
        the provider no longer knows is not an error). (Promoted to the base class; additive.)"""
        if self.auth_kind != AuthKind.OAUTH2:
            return
        spec = self.oauth_spec(connection.config)
        token = str(connection.credentials.get("refresh_token") or connection.credentials.get("access_token") or "")
        if spec.revoke_url and token:
            from integrations import oauth_client

            hint = "refresh_token" if connection.credentials.get("refresh_token") else "access_token"
            oauth_client.revoke_token(spec, token, token_type_hint=hint)

    def oauth_callback_extras(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Provider tenant ids carried on the OAuth callback that must be kept with the tokens (QuickBooks
        `realmId`). Receives the callback's query parameters; returns the values to store in the integration's
        config. Raises `ValueError` when a required one is missing."""
        return {}

    def push(self, connection: Connection, request: PushRequest) -> PushResult:
        """Create or update one object at the provider (update when `request.external_id` is set). Uses the
        idempotency mechanism the provider has (Idempotency-Key, requestid) with `request.idempotency_key`, so a
        retry after a crash between sending and recording cannot create a duplicate. Returns a `PushResult`.
        Raises the usual `ProviderError` family; a stale object version is handled inside (re-read, retry once).
        """
        raise NotImplementedError

    # --- webhooks (capability WEBHOOKS) ---------------------------------------------------------------------
    webhook_content_types: ClassVar[tuple[str, ...]] = ("application/json",)

    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes, secrets: list[str], now: datetime) -> None:
        """Check the delivery's signature on the raw body bytes, in constant time, against each of `secrets`
        (the current one first, then any previous one still inside its rotation window). `headers` is
        case-insensitive. Returns None when authentic; raises `WebhookSignatureError` otherwise. Never called
        without at least one secret: the receiver fails closed before that.
        """
        raise NotImplementedError

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        """Turn an authentic delivery into an `InboundEvent`. Raises `ValueError` when the body is not valid
        JSON or lacks the id (the receiver stores it as failed, nothing is lost)."""
        raise NotImplementedError

    def webhook_handlers(self) -> dict[str, Callable[[InboundEvent, Connection], WebhookOutcome]]:
        """The handler table: event type -> function. Types not in it are recorded as `ignored`. A handler
        returns a `WebhookOutcome`; raises `BadRecordError` for a payload it cannot use, `ProviderError`
        subclasses when it had to call the provider and that failed."""
        return {}

    # --- app-level webhooks (`app_webhooks`) ------------------------------------------------------------------
    # Some providers (QuickBooks) have one webhook URL and one signing secret per developer app, not per connected
    # account, and one delivery may carry changes of several accounts. Such a provider sets `app_webhooks` and
    # the setting holding its secrets; the provider-level receiver (`/api/webhooks/providers/<key>/`) verifies
    # with those, splits a delivery per account and stores each part for the integration connected to that
    # account. (Added with the provider-level receiver; additive, the per-integration receiver is unchanged.)
    app_webhooks: ClassVar[bool] = False
    app_webhook_secrets_setting: ClassVar[str] = ""  # a list setting: the current secret first, then older ones

    def app_webhook_secrets(self) -> list[str]:
        """The app-level signing secrets, in order, from the setting named by `app_webhook_secrets_setting` (a
        list, or comma-separated text). Returns an empty list when none is set: the provider-level receiver then
        refuses every delivery (fail closed). Raises nothing."""
        if not self.app_webhook_secrets_setting:
            return []
        from django.conf import settings

        value = getattr(settings, self.app_webhook_secrets_setting, None) or []
        items = value.split(",") if isinstance(value, str) else value
        return list(dict.fromkeys(s.strip() for s in items if isinstance(s, str) and s.strip()))

    def integration_account_id(self, config: Mapping[str, Any]) -> str:
        """The provider account (tenant) an integration is connected to, read from its validated config, or ""
        when it is not connected to one yet. Provider-level deliveries are routed by it. Raises nothing."""
        return ""

    def split_webhook_by_account(self, event: InboundEvent) -> list[InboundEvent]:
        """Split a parsed delivery into one event per account it carries changes for, in first-seen order; each
        is stored as it would be had it come alone (its own de-duplication id). The default returns the delivery
        as it is. Raises `ValueError` like `parse_webhook` for a delivery that cannot be split."""
        return [event]

    def webhook_account_id(self, event: InboundEvent) -> str:
        """The account one event from `split_webhook_by_account` belongs to, comparable with
        `integration_account_id`. Raises `ValueError` when the event names no single account."""
        raise NotImplementedError

    def refresh_credentials(self, connection: Connection) -> dict[str, Any] | None:
        """Obtain fresh credentials (client-credentials grant, OAuth refresh). Called once on a 401 and before
        a known expiry, under a per-integration lock. Returns the new credentials (also passed to
        `connection.save_credentials`), or None when this auth kind cannot refresh. Raises `AuthError` when
        the grant is refused (e.g. `invalid_grant`).

        The default does the OAuth 2.0 refresh-token grant for auth kind OAUTH2 (`oauth_spec(config)`), keeping
        any other stored keys and saving the new access and refresh tokens, with their expiry times, together;
        other auth kinds return None. (The OAuth default was added with the generic connect flow.)
        """
        if self.auth_kind != AuthKind.OAUTH2 or self.oauth is None:
            return None
        from integrations import oauth_client

        spec = self.oauth_spec(connection.config)
        tokens = oauth_client.refresh_token(spec, str(connection.credentials.get("refresh_token") or ""))
        credentials = {**connection.credentials, **tokens.as_credentials()}
        connection.save_credentials(credentials)
        return credentials


def validate_provider_class(provider: type[Provider]) -> None:
    """Checks the registry runs on every provider: declared attributes exist and resources are consistent."""
    for attr in ("key", "name", "category", "auth_kind"):
        if not getattr(provider, attr, None):
            raise TypeError(f"{provider.__name__} must set {attr}")
    if provider.app_webhooks and not (
        Capability.WEBHOOKS in provider.capabilities and provider.app_webhook_secrets_setting
    ):
        raise TypeError(f"{provider.__name__} has app-level webhooks: it needs WEBHOOKS and a secrets setting")
    names = [resource.name for resource in provider.resources]
    if len(names) != len(set(names)):
        raise TypeError(f"{provider.__name__} declares a resource twice")
    for resource in provider.resources:
        unknown = set(resource.depends_on) - set(names)
        if unknown:
            raise TypeError(f"{provider.__name__}.{resource.name} depends on unknown resources {sorted(unknown)}")


def ordered_resources(provider: type[Provider], wanted: Iterable[str] | None = None) -> list[Resource]:
    """Resources in dependency order (customers before orders), optionally restricted to `wanted`."""
    chosen = {r.name for r in provider.resources} if wanted is None else set(wanted)
    ordered: list[Resource] = []
    seen: set[str] = set()

    def visit(resource: Resource) -> None:
        if resource.name in seen:
            return
        seen.add(resource.name)
        for dependency in resource.depends_on:
            if dependency in chosen:
                visit(provider.resource(dependency))
        ordered.append(resource)

    for resource in provider.resources:
        if resource.name in chosen:
            visit(resource)
    return ordered
