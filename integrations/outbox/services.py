"""The push outbox: enqueue in the caller's transaction, send from a task, retry on a schedule kept in the database.

1. `outbox_enqueue_for(event=..., obj=...)`, called by the orders services inside the transaction that changes the
   order or customer, writes one `OutboxEntry` per enabled push rule that wants the event (DESIGN.md rule 1: the
   row exists or the change does not) and nudges the sender after commit. An entry that was never attempted
   already covers a later change of the same object (its snapshot is built when it is sent), so a burst of
   edits is one push.
2. `outbox_entry_send(entry_id=...)` claims the entry (`SELECT ... FOR UPDATE SKIP LOCKED`, then a lease in
   `claimed_until`, at most one entry per object and resource in flight), builds the canonical snapshot from the
   local rows, and calls `Provider.push` with the entry's idempotency key, outside any transaction (a token
   refresh inside the push must commit on its own). The external id goes into the identity map in the same
   transaction that marks the entry sent; an object pushed before is updated at the provider, never created
   twice.
3. Failures: transient ones (and unexpected errors) are retried at `next_attempt_at`, exponential with jitter
   and at least the provider's Retry-After, until `INTEGRATIONS_OUTBOX_MAX_ATTEMPTS`, then the entry is dead; a
   record the provider refuses (bad data, a permanent 4xx) is dead at once, with the reason; an auth failure
   disconnects the integration and the entry waits for the reconnect. Staff retry failed or dead entries.
4. `outbox_sweep` (every minute) sends what is due: retries whose time has come, entries whose nudge was lost,
   entries a dead worker held (lease expired).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import Model, Q
from django.utils import timezone

from integrations.errors import AuthError, BadRecordError, ProviderError, TransientError
from integrations.models import (
    SENDABLE_OUTBOX_STATUSES,
    IdentityMapping,
    Integration,
    IntegrationStatus,
    OutboxEntry,
    OutboxOperation,
    OutboxStatus,
    PushRule,
)
from integrations.outbox.rules import EVENT_KINDS, rule_matches
from integrations.outbox.snapshots import LOCAL_MODELS, snapshot_build
from integrations.providers.base import PushRequest, PushResult
from integrations.services import rows_validate
from integrations.sync.scheduling import backoff_delay
from jewelia.core.exceptions import Conflict
from orders.models import Order

logger = logging.getLogger("jewelia.integrations.outbox")

ERROR_CHARS = 2000


class _GiveUp(Exception):
    """The entry can never be sent as it is (its object or rule is gone)."""


# --- enqueue ----------------------------------------------------------------------------------------------------------
def outbox_enqueue_for(*, event: str, obj: Model) -> list[OutboxEntry]:
    """Queue `obj` (an Order or a Customer) for every integration whose enabled push rules want `event`.

    Must run inside the transaction that makes the change, so the entries commit (or roll back) with it; the
    sender is nudged after commit. Integrations that are not drafts get entries (a disconnected or paused one
    sends them once it is active again, so nothing is lost while it is away). Returns the entries created.
    Costs one query when no rule wants the event.
    """
    if event not in EVENT_KINDS:
        raise ValueError(f"unknown push event {event!r}")
    if not isinstance(obj, LOCAL_MODELS[EVENT_KINDS[event]]):
        raise TypeError(f"{event} is about a {LOCAL_MODELS[EVENT_KINDS[event]].__name__}, not {type(obj).__name__}")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_enqueue_for must run inside the transaction that makes the change")
    rules = [
        rule
        for rule in PushRule.objects.filter(event=event, enabled=True)
        .exclude(integration__status=IntegrationStatus.DRAFT)
        .order_by("integration_id", "resource")
        if rule_matches(rule, obj)
    ]
    if not rules:
        return []
    content_type = ContentType.objects.get_for_model(obj)
    integration_ids = {rule.integration_id for rule in rules}
    waiting = set(
        OutboxEntry.objects.filter(
            integration_id__in=integration_ids,
            content_type=content_type,
            object_id=obj.pk,
            status=OutboxStatus.PENDING,
            attempts=0,
            claimed_until__isnull=True,
        ).values_list("rule_id", flat=True)
    )
    known = set(
        IdentityMapping.objects.filter(
            integration_id__in=integration_ids, content_type=content_type, object_id=obj.pk
        ).values_list("integration_id", "resource")
    )
    now = timezone.now()
    entries = [
        OutboxEntry(
            integration_id=rule.integration_id,
            rule=rule,
            event=event,
            resource=rule.resource,
            content_type=content_type,
            object_id=obj.pk,
            operation=(
                OutboxOperation.UPDATE if (rule.integration_id, rule.resource) in known else OutboxOperation.CREATE
            ),
            next_attempt_at=now,
        )
        for rule in rules
        if rule.pk not in waiting  # never attempted yet: its snapshot, built when sent, carries this change too
    ]
    if not entries:
        return []
    entries = OutboxEntry.objects.bulk_create(entries)
    ids = [entry.pk for entry in entries]
    transaction.on_commit(lambda: _nudge(ids))
    return entries


def _nudge(ids: list[int]) -> None:
    from integrations.tasks import outbox_send_task

    for entry_id in ids:
        outbox_send_task.delay(entry_id)


# --- send -------------------------------------------------------------------------------------------------------------
def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt after `attempts` tries (`backoff_delay` on INTEGRATIONS_OUTBOX_RETRY_*)."""
    return backoff_delay(
        attempts,
        base=settings.INTEGRATIONS_OUTBOX_RETRY_BASE_SECONDS,
        cap=settings.INTEGRATIONS_OUTBOX_RETRY_MAX_SECONDS,
        retry_after=retry_after,
    )


def _claim(entry_id: int, now: datetime) -> OutboxEntry | None:
    """Take the entry for this worker (attempts + 1, a lease), or None: not due, not sendable, its integration
    not active, another worker holds it, or another entry of the same object is in flight."""
    with transaction.atomic():
        entry = (
            OutboxEntry.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("integration", "rule")
            .filter(
                pk=entry_id,
                status__in=SENDABLE_OUTBOX_STATUSES,
                next_attempt_at__lte=now,
                integration__status=IntegrationStatus.ACTIVE,
            )
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
            .first()
        )
        if entry is None:
            return None
        # A dead worker's expired lease on a sibling entry would keep this one out of the in-flight index.
        OutboxEntry.objects.filter(
            integration_id=entry.integration_id,
            resource=entry.resource,
            content_type_id=entry.content_type_id,
            object_id=entry.object_id,
            claimed_until__lte=now,
        ).exclude(pk=entry.pk).update(claimed_until=None)
        entry.attempts += 1
        entry.claimed_until = now + timedelta(seconds=settings.INTEGRATIONS_OUTBOX_LEASE_SECONDS)
        try:
            with transaction.atomic():
                entry.save(update_fields=["attempts", "claimed_until", "updated_at"])
        except IntegrityError:
            return None  # the same object is being pushed right now; the sweeper sends this one afterwards
    return entry


def outbox_entry_send(*, entry_id: int, now: datetime | None = None) -> OutboxEntry | None:
    """Send one entry (see the module docstring). Returns it with its outcome stored, or None when it was not
    claimable. Never raises for a provider failure: the outcome is on the row."""
    now = now or timezone.now()
    entry = _claim(entry_id, now)
    if entry is None:
        return None
    try:
        result, previous_id, record_hash = _push(entry)
    except _GiveUp as exc:
        return _failed(entry, str(exc), dead=True)
    except AuthError as exc:
        from integrations.oauth import integration_auth_lost

        integration_auth_lost(integration_id=entry.integration_id, reason=exc.message)
        return _failed(entry, f"The provider refused the credentials: {exc.message}", retry_in=0)
    except TransientError as exc:
        return _failed(entry, exc.message, retry_in=retry_delay(entry.attempts, exc.retry_after))
    except (BadRecordError, ProviderError) as exc:  # refused for good: retrying the same snapshot cannot help
        return _failed(entry, exc.message, dead=True)
    except NotImplementedError:
        return _failed(entry, f"{entry.integration.provider_impl.name} cannot push {entry.resource}", dead=True)
    except Exception as exc:  # undecryptable credentials, a disallowed URL, a bug: retried like a transient error
        logger.exception("outbox entry %s crashed", entry.pk)
        return _failed(entry, f"{type(exc).__name__}: {exc}", retry_in=retry_delay(entry.attempts))
    return _sent(entry, result, previous_id=previous_id, record_hash=record_hash)


def _push(entry: OutboxEntry) -> tuple[PushResult, str, str]:
    from integrations.sync.connection import connection_build
    from integrations.sync.writers.base import content_hash

    integration = entry.integration
    provider = integration.provider_impl
    rule = entry.rule
    if rule is None or not rule.enabled:
        raise _GiveUp("The push rule that queued this entry was removed or disabled.")
    model = entry.content_type.model_class()
    queryset = model.objects.all()
    if model is Order:
        queryset = queryset.select_related("customer").prefetch_related("items")
    obj = queryset.filter(pk=entry.object_id).first()
    if obj is None:
        raise _GiveUp(f"The local {entry.content_type.model} {entry.object_id} no longer exists.")
    previous_id = (
        IdentityMapping.objects.filter(
            integration=integration,
            resource=entry.resource,
            content_type_id=entry.content_type_id,
            object_id=entry.object_id,
        )
        .order_by("-updated_at", "-id")
        .values_list("external_id", flat=True)
        .first()
        or ""
    )
    record = snapshot_build(integration=integration, provider=provider, obj=obj, external_id=previous_id)
    request = PushRequest(
        resource=entry.resource,
        record=record,
        idempotency_key=entry.idempotency_key,
        external_id=previous_id,
        options=dict(rule.options or {}),
    )
    result = provider.push(connection_build(integration, provider=provider), request)
    return result, previous_id, content_hash(record)


def identity_record(*, entry: OutboxEntry, external_id: str, record_hash: str) -> None:
    """Point (integration, resource, external id) at the entry's object, dropping any other id this object had
    under the resource (so the next push finds exactly one)."""
    IdentityMapping.objects.filter(
        integration_id=entry.integration_id,
        resource=entry.resource,
        content_type_id=entry.content_type_id,
        object_id=entry.object_id,
    ).exclude(external_id=external_id).delete()
    IdentityMapping.objects.update_or_create(
        integration_id=entry.integration_id,
        resource=entry.resource,
        external_id=external_id,
        defaults={
            "content_type_id": entry.content_type_id,
            "object_id": entry.object_id,
            "content_hash": record_hash,
        },
    )


def _sent(entry: OutboxEntry, result: PushResult, *, previous_id: str, record_hash: str) -> OutboxEntry:
    now = timezone.now()
    with transaction.atomic():
        identity_record(entry=entry, external_id=result.external_id, record_hash=record_hash)
        entry.status, entry.external_id, entry.sent_at = OutboxStatus.SENT, result.external_id, now
        entry.operation = OutboxOperation.UPDATE if previous_id else OutboxOperation.CREATE
        entry.claimed_until, entry.next_attempt_at, entry.last_error = None, None, ""
        entry.save(
            update_fields=[
                "status",
                "external_id",
                "sent_at",
                "operation",
                "claimed_until",
                "next_attempt_at",
                "last_error",
                "updated_at",
            ]
        )
    logger.info("outbox entry %s sent: %s %s %s", entry.pk, entry.operation, entry.resource, result.external_id)
    return entry


def _failed(entry: OutboxEntry, error: str, *, dead: bool = False, retry_in: float | None = None) -> OutboxEntry:
    now = timezone.now()
    if not dead and entry.attempts >= settings.INTEGRATIONS_OUTBOX_MAX_ATTEMPTS and retry_in:
        dead, error = True, f"{error} (gave up after {entry.attempts} attempts)"
    entry.status = OutboxStatus.DEAD if dead else OutboxStatus.FAILED
    entry.next_attempt_at = None if dead else now + timedelta(seconds=retry_in or 0)
    entry.last_error, entry.claimed_until = error[:ERROR_CHARS], None
    entry.save(update_fields=["status", "next_attempt_at", "last_error", "claimed_until", "updated_at"])
    logger.warning("outbox entry %s %s (attempt %s): %s", entry.pk, entry.status, entry.attempts, error[:300])
    return entry


# --- sweep and retry --------------------------------------------------------------------------------------------------
def outbox_due(*, now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Ids of entries to send now: due retries and nudges older than the grace period (their message may be
    lost), and entries whose lease expired (their worker died), of active integrations, oldest first."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.INTEGRATIONS_OUTBOX_SWEEP_GRACE_SECONDS)
    due = (
        OutboxEntry.objects.filter(
            status__in=SENDABLE_OUTBOX_STATUSES, integration__status=IntegrationStatus.ACTIVE, next_attempt_at__lte=now
        )
        .filter(Q(claimed_until__isnull=True, next_attempt_at__lte=now - grace) | Q(claimed_until__lte=now))
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)
    )
    return list(due[: limit or settings.INTEGRATIONS_OUTBOX_SWEEP_BATCH])


def outbox_sweep(*, now: datetime | None = None) -> list[int]:
    """Nudge the sender for every due entry (see `outbox_due`). Returns their ids."""
    ids = outbox_due(now=now)
    if ids:
        _nudge(ids)
        logger.info("outbox sweep: %s entries due", len(ids))
    return ids


def outbox_entry_retry(*, entry: OutboxEntry) -> OutboxEntry:
    """Send a failed or dead entry again now (from the API or admin). Its idempotency key stays, so an earlier
    attempt that did reach the provider is not repeated; a dead entry gets one more attempt (a transient failure
    then reschedules it only while it is under the attempt limit)."""
    now = timezone.now()
    updated = OutboxEntry.objects.filter(
        pk=entry.pk, status__in=[OutboxStatus.FAILED, OutboxStatus.DEAD], claimed_until__isnull=True
    ).update(status=OutboxStatus.PENDING, next_attempt_at=now, updated_at=now)
    if not updated:
        entry.refresh_from_db()
        raise Conflict(
            f"Only a failed or dead entry can be retried; this one is {entry.status}.",
            code="outbox_not_retryable",
            details={"status": entry.status},
        )
    entry.refresh_from_db()
    transaction.on_commit(lambda: _nudge([entry.pk]))
    return entry


def outbox_cleanup(*, older_than_days: int) -> int:
    """Delete sent entries older than the retention period; failed and dead ones stay until someone acts."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = OutboxEntry.objects.filter(status=OutboxStatus.SENT, sent_at__lt=cutoff).delete()
    return deleted


# --- rules ------------------------------------------------------------------------------------------------------------
def push_rules_replace(*, integration: Integration, rules: list[dict[str, Any]]) -> list[PushRule]:
    """Replace the integration's push rules with `rules`, all validated first against the provider's push
    capabilities (nothing changes when any is invalid; errors are reported per item). Entries already queued
    keep their rule when an identical (event, resource) rule is kept; others lose it and are not sent."""
    rows = rows_validate(
        rules,
        field="rules",
        build=lambda item: PushRule(integration=integration, **item),
        key=lambda row: (row.event, row.resource),
        repeated=lambda row: {"resource": [f"{row.event} -> {row.resource} is configured twice."]},
    )
    with transaction.atomic():
        current_rules = PushRule.objects.select_for_update().filter(integration=integration)
        existing = {(r.event, r.resource): r for r in current_rules}
        kept = []
        for row in rows:
            current = existing.pop((row.event, row.resource), None)
            if current is not None:
                current.channels, current.options, current.enabled = row.channels, row.options, row.enabled
                current.save(update_fields=["channels", "options", "enabled", "updated_at"])
                kept.append(current)
            else:
                row.save()
                kept.append(row)
        PushRule.objects.filter(pk__in=[r.pk for r in existing.values()]).delete()
    return sorted(kept, key=lambda r: (r.event, r.resource))
