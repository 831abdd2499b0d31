"""The receiver's hot path: find the integration, verify, parse, store once, nudge processing.

Constant work per delivery (DESIGN.md rule 8): the integration row (from a short per-process cache, else one
read), the provider's HMAC check on the raw bytes, one JSON parse, one `INSERT ... ON CONFLICT DO NOTHING`
(the unique constraint detects a duplicate; no read first, no exception), and after commit a drain nudge that
costs a cache round trip at most twice a second per process. Processing is never started per request: a drain
task claims stored events in batches (DESIGN.md rule 1: the row is the truth, the broker only a nudge). Nothing
here calls a provider.

Two doors share the storing path (`_event_store`): the per-integration receiver (`delivery_accept`, the
integration's own secret) and the provider-level one (`app_delivery_accept`) for providers with one webhook URL
and secret per developer app (`Provider.app_webhooks`, QuickBooks): verified with the app's secrets, split per
account, each part stored for the integration connected to that account.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from integrations import crypto
from integrations.models import Integration, IntegrationStatus
from integrations.providers import registry
from integrations.providers.base import Capability, InboundEvent, Provider, WebhookSignatureError
from webhooks import counters
from webhooks.models import WebhookEvent, WebhookEventStatus
from webhooks.secrets import secrets_from_credentials

logger = logging.getLogger("jewelia.webhooks")
security_logger = logging.getLogger("jewelia.security.webhooks")

# Events for an integration in these states are stored `held` and processed once it is active again.
HOLD_STATUSES = frozenset({IntegrationStatus.PAUSED, IntegrationStatus.DRAFT, IntegrationStatus.DISCONNECTED})

# Request headers never stored with an event: credentials a caller might send along, whatever the provider.
_SECRET_HEADER_WORDS = ("authorization", "cookie", "token", "secret", "password", "api-key", "apikey", "csrf")
_MAX_HEADER_VALUE = 1024
_MAX_HEADERS = 40


@dataclass(frozen=True)
class Target:
    """What the receiver needs to know about the integration a delivery is addressed to."""

    integration_id: str
    provider: Provider
    status: str
    credentials_encrypted: str = field(repr=False)

    @property
    def holds(self) -> bool:
        return self.status in HOLD_STATUSES


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    UNPARSABLE = "unparsable"


@dataclass(frozen=True)
class Receipt:
    outcome: Outcome
    status: str = ""  # the stored event's status (pending or held)
    reason: str = ""  # why a delivery was rejected or could not be parsed (for logs and the 400 answer)


# The integration behind a receiver URL, per process, for WEBHOOKS_TARGET_CACHE_SECONDS: under load that saves a
# query on almost every delivery. A stale entry is harmless: a stale "paused" stores an event `held` (the sweeper
# releases held events of active integrations), a stale "active" stores it `pending` (the processor holds it), a
# new secret verifies once the entry expires (the provider retries meanwhile).
_TARGETS: dict[str, tuple[float, Target]] = {}
_TARGETS_SIZE = 10_000


def webhook_target_get(*, integration_id: Any) -> Target | None:
    """The integration behind a receiver URL, or None when no integration with webhooks has this id."""
    key = str(integration_id)
    ttl = settings.WEBHOOKS_TARGET_CACHE_SECONDS
    cached = _TARGETS.get(key)
    if cached is not None and time.monotonic() - cached[0] < ttl:
        return cached[1]
    row = (
        Integration.objects.filter(pk=integration_id).values_list("provider", "status", "credentials_encrypted").first()
    )
    if row is None:
        return None
    provider_key, status, credentials_encrypted = row
    try:
        provider = registry.get_provider(provider_key)
    except KeyError:
        return None
    if not provider.has(Capability.WEBHOOKS):
        return None
    target = Target(key, provider, status, credentials_encrypted)
    if ttl > 0:
        if len(_TARGETS) >= _TARGETS_SIZE:
            _TARGETS.clear()
        _TARGETS[key] = (time.monotonic(), target)
    return target


# Decrypting credentials is the costliest step of a delivery after the database; the same ciphertext always
# decrypts to the same secrets, so a small per-process map keyed by the ciphertext skips it. A changed secret
# is a new ciphertext, so a rotation takes effect on the next delivery.
_SECRETS_CACHE: OrderedDict[str, dict[str, Any]] = OrderedDict()
_SECRETS_CACHE_SIZE = 256


def _webhook_credentials(credentials_encrypted: str) -> dict[str, Any]:
    cached = _SECRETS_CACHE.get(credentials_encrypted)
    if cached is None:
        credentials = crypto.decrypt_json(credentials_encrypted)
        cached = {key: value for key, value in credentials.items() if key.startswith("webhook_secret")}
        _SECRETS_CACHE[credentials_encrypted] = cached
        if len(_SECRETS_CACHE) > _SECRETS_CACHE_SIZE:
            _SECRETS_CACHE.popitem(last=False)
    return cached


def target_secrets(target: Target, *, now) -> list[str]:
    try:
        return secrets_from_credentials(_webhook_credentials(target.credentials_encrypted), now=now)
    except crypto.DecryptionError:
        logger.error(
            "integration %s: credentials cannot be decrypted; webhook deliveries are refused", target.integration_id
        )
        return []


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The delivery headers worth keeping (provider topic, ids, timestamps, signature, user agent), without any
    header that could carry a credential of ours, bounded in count and size."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if any(word in lowered for word in _SECRET_HEADER_WORDS) or lowered in ("content-length", "host"):
            continue
        kept[name] = value[:_MAX_HEADER_VALUE]
        if len(kept) >= _MAX_HEADERS:
            break
    return kept


def delivery_accept(*, target: Target, headers: Mapping[str, str], body: bytes, remote_addr: str = "") -> Receipt:
    """Verify, parse and store one delivery whose size and content type the view has checked.

    Rejected (no secret configured, bad signature): nothing is stored but a counter. Authentic but unparsable:
    stored `failed` with the reason, once per distinct body. Authentic: stored `pending` (or `held`), or counted
    as a duplicate when (integration, provider event id) exists already.
    """
    now = timezone.now()
    secrets = target_secrets(target, now=now)
    if not secrets:
        return _reject(target, "no webhook secret is configured for this integration", remote_addr, now)
    try:
        target.provider.verify_webhook(headers=headers, body=body, secrets=secrets, now=now)
    except WebhookSignatureError as exc:
        return _reject(target, str(exc) or "invalid signature", remote_addr, now)

    try:
        event = target.provider.parse_webhook(headers=headers, body=body)
    except ValueError as exc:
        reason = str(exc)[:500] or "the body cannot be parsed"
        _unparsable_store(target.integration_id, headers=headers, body=body, reason=reason, now=now)
        return Receipt(Outcome.UNPARSABLE, status=WebhookEventStatus.FAILED, reason=reason)

    receipt = _event_store(target, event, headers=headers, body=body, now=now)
    if receipt.status == WebhookEventStatus.PENDING:
        _nudge_after_commit()
    return receipt


def _event_store(target: Target, event: InboundEvent, *, headers, body: bytes, now) -> Receipt:
    """Store one authentic event for `target`: `held` while its integration is not active, else `pending`; a
    duplicate (counted, nothing written) when (integration, provider event id) exists. The caller nudges
    processing. Raises `IntegrationGone`."""
    status = WebhookEventStatus.HELD if target.holds else WebhookEventStatus.PENDING
    stored = event_insert(
        _event_values(target, event, headers=headers, body=body, status=status, now=now), fields=DELIVERY_FIELDS
    )
    if stored is None:
        _count(target, counters.DUPLICATES, now)
        return Receipt(Outcome.DUPLICATE)
    return Receipt(Outcome.STORED, status=status)


def _unparsable_store(integration_id: str, *, headers, body: bytes, reason: str, now) -> None:
    """Keep an authentic delivery that cannot be parsed, `failed` with the reason, so staff see it and can replay
    it after a fix (DESIGN.md rule 7). The same body retried by the provider is stored once: its hash stands in
    for the event id."""
    event_insert(
        WebhookEvent(
            integration_id=integration_id,
            provider_event_id=f"unparsable:{hashlib.sha256(body).hexdigest()}",
            event_type="",
            status=WebhookEventStatus.FAILED,
            received_at=now,
            headers=stored_headers(headers),
            raw_body=body,
            signature_valid=True,
            last_error=f"Unparsable delivery: {reason}",
        )
    )
    logger.warning("integration %s: stored an authentic delivery that cannot be parsed: %s", integration_id, reason)


def _nudge_after_commit() -> None:
    from webhooks.services.processing import drain_nudge

    transaction.on_commit(drain_nudge)


# --- the provider-level receiver -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AppReceipt:
    """What became of a provider-level delivery: counts of its parts (one per account) when it was accepted."""

    outcome: Outcome  # STORED (accepted, whatever became of its parts), REJECTED or UNPARSABLE
    stored: int = 0  # parts stored as new events (pending or held)
    held: int = 0  # of those, how many wait for a paused (draft, disconnected) integration
    duplicate: int = 0  # parts whose event the integration has already
    unrouted: int = 0  # parts for an account no integration is connected to: not stored
    reason: str = ""


def app_webhook_provider_get(*, provider_key: str) -> Provider | None:
    """The provider behind a provider-level receiver URL, or None when no provider with app-level webhooks has
    this key."""
    try:
        provider = registry.get_provider(provider_key)
    except KeyError:
        return None
    if not (provider.app_webhooks and provider.has(Capability.WEBHOOKS)):
        return None
    return provider


# Which integration an account's deliveries go to when several of a provider are connected to it (a company
# reconnected as a new integration beside the old row): the active one, else one in error, else one that holds its
# events; among equals the newest.
_ROUTING_ORDER = {
    IntegrationStatus.ACTIVE: 0,
    IntegrationStatus.ERROR: 1,
    IntegrationStatus.PAUSED: 2,
    IntegrationStatus.DRAFT: 3,
    IntegrationStatus.DISCONNECTED: 4,
}
# Account id -> integration, per provider and process, for WEBHOOKS_TARGET_CACHE_SECONDS (as `_TARGETS`). A delivery
# for an account the cached map does not know reloads it, so a company connected a moment ago is routed at once.
_ACCOUNT_TARGETS: dict[str, tuple[float, dict[str, Target]]] = {}


def account_targets_get(*, provider: Provider) -> dict[str, Target]:
    """Account id -> the integration of `provider` that receives that account's app-level deliveries: one query
    for the provider's integrations (one per connected account, a handful), whatever the delivery carries."""
    rows = (
        Integration.objects.filter(provider=provider.key)
        .order_by("-created_at", "-pk")
        .values_list("pk", "status", "config")
    )
    targets: dict[str, Target] = {}
    for pk, status, config in rows:
        account_id = provider.integration_account_id(config if isinstance(config, Mapping) else {})
        if not account_id:
            continue
        current = targets.get(account_id)
        rank = _ROUTING_ORDER.get(status, len(_ROUTING_ORDER))
        if current is None or rank < _ROUTING_ORDER.get(current.status, len(_ROUTING_ORDER)):
            # The app's secrets verify these deliveries: the integration's own credentials are not needed.
            targets[account_id] = Target(str(pk), provider, status, credentials_encrypted="")
    if settings.WEBHOOKS_TARGET_CACHE_SECONDS > 0:
        _ACCOUNT_TARGETS[provider.key] = (time.monotonic(), targets)
    return targets


def _account_targets_for(provider: Provider, accounts: list[str]) -> dict[str, Target]:
    """The routing map from this process's cache while it is fresh and knows every account of the delivery;
    reloaded otherwise (a company connected a moment ago is routed at once)."""
    cached = _ACCOUNT_TARGETS.get(provider.key)
    fresh = cached is not None and time.monotonic() - cached[0] < settings.WEBHOOKS_TARGET_CACHE_SECONDS
    if fresh and all(account in cached[1] for account in accounts):
        return cached[1]
    return account_targets_get(provider=provider)


def app_delivery_accept(
    *, provider: Provider, headers: Mapping[str, str], body: bytes, remote_addr: str = ""
) -> AppReceipt:
    """Verify a delivery to a provider's app-level URL with the app's secrets, split it per account and store each
    part for the integration connected to that account, exactly as `delivery_accept` stores an event (one
    de-duplicating insert, held for a paused integration, duplicates counted, one processing nudge).

    Rejected (no app secret configured, bad signature): nothing stored, one security log line a minute. Authentic
    but unparsable: stored `failed` for every integration connected through the app (which company it is for
    cannot be told), or, with none connected, logged with the reason and the body's hash. A part for an account
    no integration is connected to is not stored: one log line with the account id, and it is counted as
    unrouted. Intuit retries anything but a 2xx for days, and an unknown company's changes
    will never become routable by retrying.
    """
    now = timezone.now()
    endpoint = f"the {provider.key} app-level endpoint"
    secrets = provider.app_webhook_secrets()
    if not secrets:
        reason = f"no app-level webhook secret is configured ({provider.app_webhook_secrets_setting})"
        _security_log(endpoint, reason, remote_addr)
        return AppReceipt(Outcome.REJECTED, reason=reason)
    try:
        provider.verify_webhook(headers=headers, body=body, secrets=secrets, now=now)
    except WebhookSignatureError as exc:
        reason = str(exc) or "invalid signature"
        _security_log(endpoint, reason, remote_addr)
        return AppReceipt(Outcome.REJECTED, reason=reason)

    try:
        delivery = provider.parse_webhook(headers=headers, body=body)
        parts = [(provider.webhook_account_id(part), part) for part in provider.split_webhook_by_account(delivery)]
    except ValueError as exc:
        reason = str(exc)[:500] or "the body cannot be parsed"
        # Whose it is cannot be told without parsing it: every integration connected through this app keeps a
        # copy (with one company, the usual case, exactly the right one).
        owners = {target.integration_id for target in account_targets_get(provider=provider).values()}
        for integration_id in sorted(owners):
            try:
                _unparsable_store(integration_id, headers=headers, body=body, reason=reason, now=now)
            except IntegrationGone:
                owners.discard(integration_id)
        if not owners:
            logger.error(
                "%s: an authentic delivery cannot be parsed, and no integration is connected to keep it "
                "(sha256 %s, %d bytes): %s",
                endpoint,
                hashlib.sha256(body).hexdigest(),
                len(body),
                reason,
            )
        return AppReceipt(Outcome.UNPARSABLE, reason=reason)

    targets = _account_targets_for(provider, [account_id for account_id, _part in parts])
    counts = {"stored": 0, "held": 0, "duplicate": 0, "unrouted": 0}
    for account_id, part in parts:
        target = targets.get(account_id)
        receipt = None
        if target is not None:
            try:
                receipt = _event_store(target, part, headers=headers, body=body, now=now)
            except IntegrationGone:
                receipt = None
        if receipt is None:
            counts["unrouted"] += 1
            logger.warning(
                "%s: event %s is for account %s, which no integration is connected to; not stored",
                endpoint,
                part.event_id,
                account_id,
            )
        elif receipt.outcome == Outcome.DUPLICATE:
            counts["duplicate"] += 1
        else:
            counts["stored"] += 1
            if receipt.status == WebhookEventStatus.HELD:
                counts["held"] += 1
    if counts["stored"] > counts["held"]:
        _nudge_after_commit()
    return AppReceipt(Outcome.STORED, **counts)


def _event_values(target: Target, event: InboundEvent, *, headers, body: bytes, status: str, now) -> dict[str, Any]:
    """The columns of a delivery (`DELIVERY_FIELDS`, by attribute name): a plain dict, no model instance, as
    nothing on the hot path needs one."""
    return {
        "integration_id": target.integration_id,
        "provider_event_id": str(event.event_id)[:255],
        "group_id": str(event.group_id or "")[:255],
        "event_type": str(event.event_type)[:100],
        "status": status,
        "received_at": now,
        "occurred_at": event.occurred_at,
        "headers": stored_headers(headers),
        "raw_body": body,
        "payload": event.payload,
        "signature_valid": True,
    }


class IntegrationGone(Exception):
    """The integration was deleted between finding it and storing its event."""


# The columns a delivery sets; the others start at their defaults, written into the statement as constants so the
# hot path binds 11 parameters instead of 21.
DELIVERY_FIELDS = (
    "integration",
    "provider_event_id",
    "group_id",
    "event_type",
    "status",
    "received_at",
    "occurred_at",
    "headers",
    "raw_body",
    "payload",
    "signature_valid",
)


def event_insert(row: WebhookEvent | Mapping[str, Any], *, fields: tuple[str, ...] | None = None) -> int | None:
    """Store an event with one statement; returns its id, or None when (integration, provider event id) exists:
    a duplicate.

    `INSERT ... ON CONFLICT (integration, provider event id) DO NOTHING RETURNING id`: the unique constraint
    decides, so two concurrent deliveries of one event store exactly one row, and a duplicate costs no
    exception, no savepoint and no second query (on PostgreSQL and SQLite alike). It is the receiver's hot path,
    so the statement is built once from the model's fields instead of through the ORM's insert compiler.
    `row` is a model instance (its id is set) or, on the hot path, a dict of column values by attribute name;
    `fields` names the fields that carry values (default: all), every other one is at its default.
    Raises `IntegrationGone` when the integration no longer exists.
    """
    connection = connections[router.db_for_write(WebhookEvent)]
    sql, bound = _insert_statement(connection, fields)
    values = row if isinstance(row, Mapping) else row.__dict__
    params = [field.get_db_prep_save(values[field.attname], connection) for field in bound]
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            inserted = cursor.fetchone()
    except IntegrityError as exc:  # the foreign key: a unique violation cannot happen with DO NOTHING
        raise IntegrationGone(values["integration_id"]) from exc
    if inserted is None:
        return None
    if isinstance(row, WebhookEvent):
        row.pk = inserted[0]
        row._state.adding, row._state.db = False, connection.alias
    return inserted[0]


_INSERT_STATEMENTS: dict[tuple, tuple[str, list]] = {}


def _insert_statement(connection, names: tuple[str, ...] | None) -> tuple[str, list]:
    key = (connection.vendor, names)
    if key not in _INSERT_STATEMENTS:
        meta = WebhookEvent._meta
        quote = connection.ops.quote_name
        fields = [field for field in meta.concrete_fields if not field.primary_key]
        bound = [field for field in fields if names is None or field.name in names]
        values = ["%s" if field in bound else _default_literal(field) for field in fields]
        conflict = ", ".join(quote(meta.get_field(name).column) for name in ("integration", "provider_event_id"))
        columns = ", ".join(quote(field.column) for field in fields)
        # Identifiers from the model's own metadata, quoted, and constant defaults; every value is a parameter.
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({', '.join(values)}) "  # noqa: S608
            f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {quote(meta.pk.column)}"
        )
        _INSERT_STATEMENTS[key] = (sql, bound)
    return _INSERT_STATEMENTS[key]


def _default_literal(field) -> str:
    default = field.get_default()
    if default is None:
        return "NULL"
    if isinstance(default, bool):
        return "TRUE" if default else "FALSE"
    if isinstance(default, int):
        return str(default)
    if default == "":
        return "''"
    raise TypeError(f"WebhookEvent.{field.name}: no SQL constant for the default {default!r}; bind it")


def _reject(target: Target, reason: str, remote_addr: str, now) -> Receipt:
    _count(target, counters.REJECTED, now)
    _security_log(f"integration {target.integration_id}", reason, remote_addr)
    return Receipt(Outcome.REJECTED, reason=reason)


def _count(target: Target, kind: str, now) -> None:
    try:
        counters.counter_increment(integration_id=target.integration_id, day=now.date(), kind=kind)
    except Exception:  # Redis down: a lost count must never cost the delivery its answer
        logger.warning("integration %s: could not count a %s delivery", target.integration_id, kind, exc_info=True)


# One security log line per receiver URL (an integration, or a provider's app-level URL) per minute and process: a
# flood of forgeries must not flood the logs either. The counter still counts every one sent to an integration.
_SECURITY_LOG_SECONDS = 60.0
_last_security_log: dict[str, float] = {}


def _security_log(endpoint: str, reason: str, remote_addr: str) -> None:
    now = time.monotonic()
    last = _last_security_log.get(endpoint)
    if last is not None and now - last < _SECURITY_LOG_SECONDS:
        return
    if len(_last_security_log) > 10_000:
        _last_security_log.clear()
    _last_security_log[endpoint] = now
    security_logger.warning(
        "webhook delivery rejected for %s from %s: %s (further rejections for this endpoint in the next %d s are "
        "not logged)",
        endpoint,
        remote_addr or "unknown address",
        reason,
        int(_SECURITY_LOG_SECONDS),
    )
