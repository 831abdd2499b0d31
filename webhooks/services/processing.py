"""Processing stored events: claim, route through the provider's handler table, write, record the outcome.

Flow (DESIGN.md rules 1 and 2):

- The receiver stores a row and, after commit, calls `drain_nudge`: a cache `add` of a short-lived key, which
  publishes one `webhooks.drain` task only when the key was absent (and which a process skips for a short
  window after it last saw a drain due). Under load that is one broker message per drain cycle instead of one
  per request.
- The drain task deletes the key first, then claims pending events in batches (`SELECT ... FOR UPDATE SKIP
  LOCKED`, so several drains on several workers never take the same event) and processes each. Every event
  committed before the key was deleted is seen by one of its claims; one committed after it re-adds the key
  and publishes a new drain. No delivery is left waiting for the sweeper unless the broker lost the message.
- A claim marks the event `processing` and increments `attempts`; the processor then locks the row and only
  finishes the claim whose attempt number it holds. A claim left behind by a killed worker is taken back by
  the sweeper after `WEBHOOKS_PROCESSING_TIMEOUT_SECONDS` (its number changes, so the lost worker could not
  finish it even if it woke up).
- Handling runs in a savepoint: the provider's handler turns the event into a `WebhookOutcome`, whose records
  go through the sync engine's writers (`records_write`: identity map, content hash, and "an older version
  never overwrites a newer one"), so a webhook and a sync of the same record agree. Outcomes: `processed`,
  `ignored` (no handler for the type: recorded, not an error), `failed` with the next attempt time in the
  database (exponential, with jitter), `dead` after the last attempt or at once for a payload that can never
  be used (`BadRecordError`, a body that is not JSON).
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.errors import BadRecordError, ProviderError
from integrations.models import Integration, IntegrationStatus
from integrations.oauth import integration_auth_lost
from integrations.providers import registry
from integrations.providers.base import InboundEvent, Provider, WebhookOutcome
from integrations.sync.connection import connection_build
from integrations.sync.scheduling import backoff_delay
from integrations.sync.writers import Entry, WriteContext, records_write, validate_record
from jewelia.core.redis import redis_cache
from webhooks.models import WebhookEvent, WebhookEventStatus
from webhooks.services.receiving import HOLD_STATUSES

logger = logging.getLogger("jewelia.webhooks")

NUDGE_KEY = "webhooks:drain-nudge"
NUDGE_TTL_SECONDS = 30
# Publishing is a nudge, never worth a wait: one quick reconnect (a broker restarted since the last publish),
# then give up and leave the event to the sweeper.
PUBLISH_OPTIONS = {"retry": True, "retry_policy": {"max_retries": 1, "interval_start": 0.1, "interval_max": 0.1}}
ERROR_CHARS = 2000


# --- nudging ----------------------------------------------------------------------------------------------------------
# When this process last found a drain due to start (it published one, or the key said one was pending).
_drain_due_since = float("-inf")


def drain_nudge() -> None:
    """Make sure a drain task will run after now, publishing at most one per drain cycle.

    Two levels of debouncing. Across processes, the cache key: present means a published drain has not started
    yet (a drain deletes it first thing), so there is nothing to publish. Within a process, for
    `WEBHOOKS_NUDGE_DEBOUNCE_SECONDS` (0.5 s) after it last saw a drain due, it does not even ask the cache:
    that drain starts later than that moment, and a drain claims once more twice that long after its last short
    batch (see `webhook_events_drain`), so it sees every event committed inside the window. Under load this is
    one cache round trip per process per window instead of one per delivery.

    Never raises: with Redis down the event is already stored, and the sweeper starts a drain once the broker
    is back (DESIGN.md rule 1).
    """
    global _drain_due_since
    from webhooks.tasks import drain

    now = time.monotonic()
    if now - _drain_due_since < _debounce_seconds():
        return
    try:
        added = _nudge_key_add()
    except Exception:
        logger.warning("webhooks: cache unavailable, processing waits for the sweeper", exc_info=True)
        return
    _drain_due_since = now
    if not added:
        return
    try:
        drain.apply_async(**PUBLISH_OPTIONS)
    except Exception:
        logger.warning("webhooks: could not publish a drain task, processing waits for the sweeper", exc_info=True)
        _drain_due_since = float("-inf")
        with contextlib.suppress(Exception):  # let the next delivery try again rather than wait for the key to expire
            cache.delete(NUDGE_KEY)


def _debounce_seconds() -> float:
    """The per-process nudge window; none when tasks run inline (no worker: the drain runs in the request that
    nudged, so there is nothing to spare and no one to wait for)."""
    from webhooks.tasks import drain

    return 0.0 if drain.app.conf.task_always_eager else settings.WEBHOOKS_NUDGE_DEBOUNCE_SECONDS


def _nudge_key_add() -> bool:
    """`cache.add` of the nudge key (SET NX EX), through the process's reused client when the cache is Redis."""
    redis = redis_cache()
    if redis is None:
        return cache.add(NUDGE_KEY, 1, timeout=NUDGE_TTL_SECONDS)
    client, backend = redis
    return bool(client.set(backend.make_key(NUDGE_KEY), 1, nx=True, ex=NUDGE_TTL_SECONDS))


def drain_publish() -> None:
    """Publish a drain task unconditionally (the sweeper, a hand-over after a long drain)."""
    from webhooks.tasks import drain

    try:
        drain.apply_async(**PUBLISH_OPTIONS)
    except Exception:
        logger.warning("webhooks: could not publish a drain task", exc_info=True)


# --- claiming ---------------------------------------------------------------------------------------------------------
def _claim(queryset, *, limit: int) -> list[tuple[int, int]]:
    """Claim up to `limit` events of `queryset` (rows other workers hold are skipped) -> [(id, attempt)]."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(queryset.select_for_update(skip_locked=True).order_by("id").values_list("id", "attempts")[:limit])
        if rows:
            WebhookEvent.objects.filter(pk__in=[row[0] for row in rows]).update(
                status=WebhookEventStatus.PROCESSING, claimed_at=now, attempts=F("attempts") + 1
            )
    return [(event_id, attempts + 1) for event_id, attempts in rows]


def webhook_events_drain(*, max_events: int | None = None) -> int:
    """Claim and process pending events in batches until none is left (or `max_events` were done, then hand
    over to a fresh drain task). Returns how many events were processed."""
    try:
        cache.delete(NUDGE_KEY)  # before the first claim: see the module docstring
    except Exception:
        logger.warning("webhooks: cache unavailable while draining", exc_info=True)
    batch = settings.WEBHOOKS_DRAIN_BATCH
    max_events = max_events or settings.WEBHOOKS_DRAIN_MAX_EVENTS
    done, last_look = 0, False
    while done < max_events:
        claimed = _claim(WebhookEvent.objects.filter(status=WebhookEventStatus.PENDING), limit=batch)
        for event_id, attempt in claimed:
            webhook_event_process_claimed(event_id=event_id, attempt=attempt)
        done += len(claimed)
        if len(claimed) < batch:
            if last_look:
                return done
            # Deliveries committed within a process's debounce window did not nudge: look once more after it.
            time.sleep(2 * _debounce_seconds())
            last_look = True
    drain_publish()
    return done


def webhook_event_process(*, event_id: int) -> WebhookEvent | None:
    """Claim and process one pending event (a replay or a hand-made event). None when it is not pending: the
    drain or another worker has it, or it is finished already."""
    claimed = _claim(WebhookEvent.objects.filter(pk=event_id, status=WebhookEventStatus.PENDING), limit=1)
    if not claimed:
        return None
    return webhook_event_process_claimed(event_id=event_id, attempt=claimed[0][1])


# --- processing one event ---------------------------------------------------------------------------------------------
class _WebhookWriteContext(WriteContext):
    @property
    def source_label(self) -> str:
        return f"{self.provider.name} webhook"


class _WriteFailed(Exception):
    """A writer refused a record for now (an unknown SKU before the product sync): worth retrying later."""


def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after `attempt` (`backoff_delay` on WEBHOOKS_RETRY_*)."""
    return backoff_delay(attempt, base=settings.WEBHOOKS_RETRY_BASE_SECONDS, cap=settings.WEBHOOKS_RETRY_MAX_SECONDS)


def webhook_event_process_claimed(*, event_id: int, attempt: int) -> WebhookEvent | None:
    """Process the event claimed as `attempt`. Returns it with its outcome stored, or None when the claim is
    not ours any more (taken back by the sweeper) or the event is gone.

    The provider's handler runs outside any transaction: it may call the provider, and a token it refreshes on
    the way (QuickBooks rotates its refresh token on every use) must be committed even if the event then fails.
    The outcome is applied and the status stored in one transaction, only while the claim is still ours.
    """
    event = _claimed(event_id, attempt)
    if event is None:
        return None
    integration = event.integration
    if integration.status in HOLD_STATUSES:
        with transaction.atomic():
            held = _claimed(event_id, attempt, lock=True)
            if held is None:
                return None
            held.status, held.attempts, held.claimed_at = WebhookEventStatus.HELD, attempt - 1, None
            held.save(update_fields=["status", "attempts", "claimed_at"])
        return held
    now = timezone.now()
    provider, outcome, error = None, None, None
    try:
        provider = registry.get_provider(integration.provider)
        outcome = _run_handler(event, integration, provider)
    except Exception as exc:  # classified below, inside the transaction that records it
        error = exc
    with transaction.atomic():
        locked = _claimed(event_id, attempt, lock=True)
        if locked is None:
            return None
        event = locked
        if error is None:
            assert provider is not None  # the handler ran
            try:
                with transaction.atomic():
                    result = _apply(event, integration, provider, outcome)
            except Exception as exc:
                error = exc
        if error is None:
            event.status, event.result = result
            event.processed_at, event.next_attempt_at, event.last_error = now, None, ""
        else:
            _record_failure(event, error, attempt=attempt, now=now)
        event.claimed_at = None
        event.save(update_fields=["status", "result", "processed_at", "next_attempt_at", "last_error", "claimed_at"])
    return event


def _claimed(event_id: int, attempt: int, *, lock: bool = False) -> WebhookEvent | None:
    """The event if it is still claimed as `attempt` (locked when asked)."""
    events = WebhookEvent.objects.select_related("integration")
    if lock:
        events = events.select_for_update(of=("self",))
    return events.filter(pk=event_id, status=WebhookEventStatus.PROCESSING, attempts=attempt).first()


def _record_failure(event: WebhookEvent, error: Exception, *, attempt: int, now: datetime) -> None:
    if isinstance(error, BadRecordError):
        _give_up(event, f"The payload cannot be used: {error.message}")
    elif isinstance(error, _WriteFailed):
        _fail(event, f"A record was refused: {error}", now=now)
    elif isinstance(error, ProviderError):
        _fail(event, f"{type(error).__name__}: {error.message}", now=now)
    else:
        logger.warning("webhook event %s failed (attempt %s)", event.pk, attempt, exc_info=error)
        _fail(event, f"{type(error).__name__}: {error}", now=now)


def _run_handler(event: WebhookEvent, integration: Integration, provider: Provider) -> WebhookOutcome | None:
    """Call the provider's handler for the event (None: no handler, the event is ignored). May call the provider."""
    if event.payload is None:
        raise BadRecordError("the delivery's body is not valid JSON")
    handler = provider.webhook_handlers().get(event.event_type)
    if handler is None:
        return None
    inbound = InboundEvent(
        event_id=event.provider_event_id,
        event_type=event.event_type,
        payload=event.payload,
        occurred_at=event.occurred_at,
        group_id=event.group_id,
    )
    return handler(inbound, connection_build(integration, provider=provider))


def _apply(
    event: WebhookEvent, integration: Integration, provider: Provider, outcome: WebhookOutcome | None
) -> tuple[str, str]:
    """Apply the handler's outcome -> (status, result). Raises to fail it (the caller's savepoint rolls back)."""
    if outcome is None:
        return WebhookEventStatus.IGNORED, f"No handler for {event.event_type or 'an untyped event'}."
    return WebhookEventStatus.PROCESSED, outcome_apply(
        integration=integration, provider=provider, event=event, outcome=outcome
    )


def outcome_apply(*, integration: Integration, provider: Provider, event: WebhookEvent, outcome: WebhookOutcome) -> str:
    """Write an outcome's records through the sync engine's writers and act on `disconnect`; returns a summary.

    `records_write` is the engine's own entry point for a batch of canonical records (dependency order,
    identity map, hashes, the source-time rule); the event is one entry of it, so a writer refusing a record
    (an unknown SKU) fails the event, to be retried when the sync has brought what it lacks.
    """
    parts = []
    if outcome.records:
        for record in outcome.records:
            validate_record(record)
        counted = provider.resource(outcome.resource).kind if outcome.resource else None
        ctx = _WebhookWriteContext.for_integration(integration, provider, batch_size=settings.WEBHOOKS_DRAIN_BATCH)
        entry = Entry(external_id=event.provider_event_id, raw=event.payload, records=list(outcome.records))
        result = records_write(ctx, [entry], counted_kind=counted)
        if result.failures:
            raise _WriteFailed("; ".join(result.failures.values()))
        parts.append(
            f"{outcome.resource or 'records'}: {result.created} created, {result.updated} updated, "
            f"{result.unchanged} unchanged"
        )
    if outcome.disconnect:
        _integration_disconnect(integration, reason=outcome.note or f"{provider.name} reported {event.event_type}")
        parts.append("integration disconnected")
    if outcome.note:
        parts.append(outcome.note)
    return ("; ".join(parts) or "Nothing to change.")[:500]


def _integration_disconnect(integration: Integration, *, reason: str) -> None:
    """The provider says the connection is gone (the app was uninstalled): the same path as a refused grant."""
    integration_auth_lost(integration_id=integration.pk, reason=f"a webhook said so: {reason}")
    integration.status = IntegrationStatus.DISCONNECTED


def _fail(event: WebhookEvent, error: str, *, now: datetime) -> None:
    if event.attempts >= settings.WEBHOOKS_MAX_ATTEMPTS:
        _give_up(event, f"{error} (gave up after {event.attempts} attempts)")
        return
    event.status = WebhookEventStatus.FAILED
    event.last_error = error[:ERROR_CHARS]
    event.next_attempt_at = now + timedelta(seconds=retry_delay(event.attempts))


def _give_up(event: WebhookEvent, error: str) -> None:
    event.status = WebhookEventStatus.DEAD
    event.last_error = error[:ERROR_CHARS]
    event.next_attempt_at = None
    logger.warning("webhook event %s is dead: %s", event.pk, error[:300])


# --- the sweeper ------------------------------------------------------------------------------------------------------
def webhook_events_sweep(*, now: datetime | None = None) -> dict[str, Any]:
    """Periodic repair (beat): failed events whose next attempt is due, claims left by killed workers and held
    events of integrations that are active again go back to `pending` (claimed with SKIP LOCKED); a claim that
    was already the last attempt ends `dead`. If anything is pending past the grace period (a lost broker
    message) or was just re-queued, one drain is published. Returns what it did."""
    now = now or timezone.now()
    requeued = _requeue(WebhookEvent.objects.filter(status=WebhookEventStatus.FAILED, next_attempt_at__lte=now))
    stale = now - timedelta(seconds=settings.WEBHOOKS_PROCESSING_TIMEOUT_SECONDS)
    abandoned_claims = WebhookEvent.objects.filter(status=WebhookEventStatus.PROCESSING, claimed_at__lt=stale)
    # An event whose processing never finishes (it kills or hangs its worker every time) must end too.
    buried = _requeue(
        abandoned_claims.filter(attempts__gte=settings.WEBHOOKS_MAX_ATTEMPTS),
        status=WebhookEventStatus.DEAD,
        error="Processing never finished (the worker died or timed out) on the last attempt.",
    )
    abandoned = _requeue(abandoned_claims)
    # Held while the integration was paused; stored held by a receiver that had not seen it resumed yet.
    released = _requeue(
        WebhookEvent.objects.filter(status=WebhookEventStatus.HELD).exclude(integration__status__in=HOLD_STATUSES)
    )
    grace = now - timedelta(seconds=settings.WEBHOOKS_PENDING_GRACE_SECONDS)
    waiting = WebhookEvent.objects.filter(status=WebhookEventStatus.PENDING, received_at__lt=grace).exists()
    if requeued or abandoned or released or waiting:
        drain_publish()
    if abandoned:
        logger.warning("webhooks: took back %s claim(s) abandoned by a worker", len(abandoned))
    return {
        "retries": requeued,
        "abandoned": abandoned,
        "dead": buried,
        "released": released,
        "drain": bool(requeued or abandoned or released or waiting),
    }


def _requeue(
    queryset, *, status: str = WebhookEventStatus.PENDING, error: str | None = None, limit: int = 1000
) -> list[int]:
    """Move up to `limit` events of `queryset` to `status`, skipping rows a worker holds right now."""
    with transaction.atomic():
        ids = list(
            queryset.select_for_update(skip_locked=True, of=("self",))
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            fields: dict[str, Any] = {"status": status, "next_attempt_at": None, "claimed_at": None}
            if error is not None:
                fields["last_error"] = error
            WebhookEvent.objects.filter(pk__in=ids).update(**fields)
    return ids
