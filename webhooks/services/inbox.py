"""Writes on the inbox outside the receiver: hand-made events, replays, releasing held events, webhook secrets,
pruning and the counters flush. Views, admin actions, commands and tasks call these."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.health import integration_health_refresh
from integrations.models import Integration
from integrations.providers import registry
from integrations.providers.base import Capability
from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict, ValidationFailed
from webhooks import counters
from webhooks.models import MIN_RETENTION_DAYS, REPLAYABLE_STATUSES, WebhookCounter, WebhookEvent, WebhookEventStatus
from webhooks.secrets import MIN_SECRET_LENGTH, credentials_with_secret
from webhooks.services.processing import PUBLISH_OPTIONS, drain_nudge
from webhooks.services.receiving import HOLD_STATUSES, event_insert

logger = logging.getLogger("jewelia.webhooks")


def _process_soon(event_id: int) -> None:
    """Publish the single-event task; with the broker down the event stays pending for the sweeper."""
    from webhooks.tasks import process_event

    try:
        process_event.apply_async((event_id,), **PUBLISH_OPTIONS)
    except Exception:
        logger.warning("webhooks: could not publish event %s, the sweeper will", event_id, exc_info=True)


# --- hand-made events -------------------------------------------------------------------------------------------------
def webhook_event_create_manual(
    *,
    integration: Integration,
    event_type: str,
    payload: Any,
    actor: Actor,
    event_id: str = "",
    occurred_at: datetime | None = None,
) -> WebhookEvent:
    """Store an event made by hand (e.g. re-injected from the provider's dashboard) and process it like a
    delivery. The type must be one the provider handles. Where the provider can read the payload as a delivery
    body (a Stripe Event carries its id and time), its id de-duplicates against real deliveries and its time
    keeps the writers' ordering rule: an old event re-injected late never overwrites newer data."""
    provider = registry.get_provider(integration.provider)
    if not provider.has(Capability.WEBHOOKS):
        raise ValidationFailed(f"{provider.name} does not send webhooks.", code="webhooks_unsupported")
    handled = sorted(provider.webhook_handlers())
    if event_type not in handled:
        raise ValidationFailed(
            details={"fields": {"type": [f"{provider.name} events handled here: {', '.join(handled)}."]}}
        )
    body = json.dumps(payload, separators=(",", ":")).encode()
    group_id = ""
    try:
        parsed = provider.parse_webhook(headers={}, body=body)
    except Exception:  # not shaped like a delivery body (Shopify puts its ids in headers): nothing to read
        parsed = None
    if parsed is not None:
        if parsed.event_type and parsed.event_type != event_type:
            raise ValidationFailed(
                details={"fields": {"type": [f"The payload is a {parsed.event_type} event, not {event_type}."]}}
            )
        event_id = event_id or parsed.event_id
        occurred_at = occurred_at or parsed.occurred_at
        group_id = parsed.group_id
    event_id = event_id or f"manual:{uuid.uuid4()}"
    status = WebhookEventStatus.HELD if integration.status in HOLD_STATUSES else WebhookEventStatus.PENDING
    event = WebhookEvent(
        integration=integration,
        provider_event_id=event_id[:255],
        group_id=group_id[:255],
        event_type=event_type,
        status=status,
        occurred_at=occurred_at,
        raw_body=body,
        payload=payload,
        signature_valid=None,
        manual=True,
        created_by_type=actor.kind,
        created_by_id=actor.id,
        created_by_label=actor.label[:200],
    )
    if event_insert(event) is None:
        existing = WebhookEvent.objects.only("id").get(
            integration=integration, provider_event_id=event.provider_event_id
        )
        raise Conflict(
            "This event was received already; replay it instead.",
            code="duplicate_event",
            details={"event_id": existing.pk},
        )
    if status == WebhookEventStatus.PENDING:
        transaction.on_commit(lambda: _process_soon(event.pk))
    return event


# --- replays ----------------------------------------------------------------------------------------------------------
_REPLAY_FIELDS = {
    "status": WebhookEventStatus.PENDING,
    "attempts": 0,
    "next_attempt_at": None,
    "claimed_at": None,
}


def webhook_event_replay(*, event: WebhookEvent) -> WebhookEvent:
    """Send a finished event through processing again (the writers make a repeat harmless). Its attempts start
    over, so a dead event gets the whole retry schedule again."""
    replayed = WebhookEvent.objects.filter(pk=event.pk, status__in=REPLAYABLE_STATUSES).update(
        **_REPLAY_FIELDS, replay_count=F("replay_count") + 1
    )
    event.refresh_from_db()
    if not replayed:
        raise Conflict(
            f"Only processed, ignored, failed or dead events can be replayed; this one is {event.status}.",
            code="not_replayable",
            details={"status": event.status},
        )
    transaction.on_commit(lambda: _process_soon(event.pk))
    return event


def webhook_events_replay_bulk(*, queryset, confirm: bool, expected: int | None = None) -> dict[str, int]:
    """Replay every replayable event of `queryset` (already filtered by the caller). Without `confirm` nothing
    changes and the count is reported (`would_replay`); with it the events are re-queued in one UPDATE and one
    drain is started (`replayed`). `expected`, when given, must equal the count, so a confirmation cannot
    replay more than the caller saw."""
    replayable = queryset.filter(status__in=REPLAYABLE_STATUSES)
    if not confirm:
        return {"would_replay": replayable.count()}
    with transaction.atomic():
        ids = list(replayable.select_for_update(skip_locked=True).values_list("pk", flat=True))
        if expected is not None and expected != len(ids):
            raise Conflict(
                f"{len(ids)} events match now, not the {expected} expected; check the count again.",
                code="count_changed",
                details={"would_replay": len(ids), "expected": expected},
            )
        replayed = WebhookEvent.objects.filter(pk__in=ids).update(**_REPLAY_FIELDS, replay_count=F("replay_count") + 1)
        if replayed:
            transaction.on_commit(drain_nudge)
    return {"replayed": replayed}


def webhook_events_release_held(*, integration: Integration) -> int:
    """Queue the events held while the integration was paused (or not connected). Call it whenever the
    integration becomes active again; returns how many were released."""
    released = WebhookEvent.objects.filter(integration=integration, status=WebhookEventStatus.HELD).update(
        status=WebhookEventStatus.PENDING
    )
    if released:
        transaction.on_commit(drain_nudge)
    return released


# --- secrets ----------------------------------------------------------------------------------------------------------
def webhook_secret_set(*, integration: Integration, secret: str, now: datetime | None = None) -> None:
    """Store `secret` as the integration's webhook signing secret (encrypted with its credentials). The secret it
    replaces keeps verifying deliveries for `WEBHOOKS_SECRET_ROTATION_HOURS`."""
    secret = (secret or "").strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValidationFailed(
            details={"fields": {"secret": [f"A webhook secret has at least {MIN_SECRET_LENGTH} characters."]}}
        )
    with transaction.atomic():
        row = Integration.objects.select_for_update().only("id", "credentials_encrypted").get(pk=integration.pk)
        row.set_credentials(credentials_with_secret(row.get_credentials(), secret=secret, now=now or timezone.now()))
        row.save(update_fields=["credentials_encrypted", "updated_at"])
    integration.credentials_encrypted = row.credentials_encrypted
    if integration.health_checked_at is not None:  # its health said "no webhook secret": say it no longer
        integration_health_refresh(integration=Integration.objects.get(pk=integration.pk))


# --- retention --------------------------------------------------------------------------------------------------------
def webhook_events_prune(
    *,
    retention_days: int | None = None,
    failed_retention_days: int | None = None,
    now: datetime | None = None,
    chunk: int = 5000,
) -> dict[str, int]:
    """Delete processed and ignored events older than the retention period and failed or dead ones older than
    the longer failed-retention period (pending, held and processing events are never pruned), plus old
    counters. The retention is also the de-duplication window, so it cannot be under 7 days."""
    retention_days = settings.WEBHOOKS_RETENTION_DAYS if retention_days is None else retention_days
    failed_retention_days = (
        settings.WEBHOOKS_FAILED_RETENTION_DAYS if failed_retention_days is None else failed_retention_days
    )
    if min(retention_days, failed_retention_days) < MIN_RETENTION_DAYS:
        raise ValidationFailed(f"Webhook events must be kept at least {MIN_RETENTION_DAYS} days (de-duplication).")
    now = now or timezone.now()
    finished = _delete_chunked(
        status__in=[WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED],
        received_at__lt=now - timedelta(days=retention_days),
        chunk=chunk,
    )
    failed = _delete_chunked(
        status__in=[WebhookEventStatus.FAILED, WebhookEventStatus.DEAD],
        received_at__lt=now - timedelta(days=failed_retention_days),
        chunk=chunk,
    )
    counter_rows, _ = WebhookCounter.objects.filter(
        day__lt=(now - timedelta(days=failed_retention_days)).date()
    ).delete()
    return {"webhook_events": finished, "failed_webhook_events": failed, "webhook_counters": counter_rows}


def _delete_chunked(*, chunk: int, **filters) -> int:
    """Delete in primary-key chunks, integration by integration, so each statement uses an index and holds its
    locks briefly even on a large table."""
    deleted = 0
    for integration_id in Integration.objects.values_list("pk", flat=True):
        queryset = WebhookEvent.objects.filter(integration_id=integration_id, **filters)
        while ids := list(queryset.values_list("pk", flat=True)[:chunk]):
            count, _ = WebhookEvent.objects.filter(pk__in=ids).delete()
            deleted += count
    return deleted


# --- counters ---------------------------------------------------------------------------------------------------------
def webhook_counters_flush() -> int:
    """Add the counts recorded in the cache since the last flush to the daily counter rows; returns how many
    (integration, day) rows changed. On a database error the counts go back to the cache for the next flush."""
    taken = counters.counters_take()
    if not taken:
        return 0
    per_day: dict[tuple[str, Any], dict[str, int]] = {}
    for (integration_id, day, kind), value in taken.items():
        per_day.setdefault((integration_id, day), {kind: 0 for kind in counters.KINDS})[kind] += value
    known = {str(pk) for pk in Integration.objects.filter(pk__in={k[0] for k in per_day}).values_list("pk", flat=True)}
    try:
        with transaction.atomic():
            for (integration_id, day), values in per_day.items():
                if integration_id not in known:  # deleted since: its counts go with it
                    continue
                increments = {kind: F(kind) + value for kind, value in values.items()}
                if not WebhookCounter.objects.filter(integration_id=integration_id, day=day).update(**increments):
                    WebhookCounter.objects.create(integration_id=integration_id, day=day, **values)
    except Exception:
        counters.counters_give_back(taken)
        raise
    return len(per_day)
