"""The receiver's hot path: find the integration, verify, parse, store once, nudge processing.

Constant work per delivery (DESIGN.md rule 8): the integration row (from a short per-process cache, else one
read), the provider's HMAC check on the raw bytes, one JSON parse, one `INSERT ... ON CONFLICT DO NOTHING`
(the unique constraint detects a duplicate; no read first, no exception), and after commit a drain nudge that
costs a cache round trip at most twice a second per process. Processing is never started per request: a drain
task claims stored events in batches (DESIGN.md rule 1: the row is the truth, the broker only a nudge). Nothing
here calls a provider.

Two doors share the storing path (`event_store`): the per-integration receiver (`delivery_accept`, the
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
        unparsable_store(target.integration_id, headers=headers, body=body, reason=reason, now=now)
        return Receipt(Outcome.UNPARSABLE, status=WebhookEventStatus.FAILED, reason=reason)

    receipt = event_store(target, event, headers=headers, body=body, now=now)
    if receipt.status == WebhookEventStatus.PENDING:
        nudge_after_commit()
    return receipt


def event_store(target: Target, event: InboundEvent, *, headers, body: bytes, now) -> Receipt:
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


def unparsable_store(integration_id: str, *, headers, body: bytes, reason: str, now) -> None:
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


def nudge_after_commit() -> None:
    from webhooks.services.processing import drain_nudge

    transaction.on_commit(drain_nudge)


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
        conflict = ", ".join(quote(meta.get_field(name).column) for name in ("integration", "provider_event_id"))  # type: ignore[union-attr]
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
    security_log(f"integration {target.integration_id}", reason, remote_addr)
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


def security_log(endpoint: str, reason: str, remote_addr: str) -> None:
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
