"""When runs happen: the per-minute dispatcher, the sweeper (retries, dead and lost runs), the bulk pump.

All three keep their state in the database (DESIGN.md rule 1): the broker only carries "run #n now" nudges,
and the sweeper repairs whatever a lost message or a killed worker left behind.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from integrations.models import Integration, IntegrationStatus, SyncRun, SyncRunStatus, SyncTrigger
from integrations.services import run_create_locked, run_enqueue

logger = logging.getLogger("jewelia.integrations.schedule")


def next_due(integration: Integration, now: datetime) -> datetime:
    """Now + interval, +- INTEGRATIONS_SCHEDULE_JITTER of it, so integrations created together drift apart."""
    interval = integration.sync_interval_minutes * 60
    jitter = settings.INTEGRATIONS_SCHEDULE_JITTER
    return now + timedelta(seconds=interval * random.uniform(1 - jitter, 1 + jitter))


def backoff_delay(attempt: int, *, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds to wait after attempt `attempt` failed: base * 2^(attempt-1), capped, +-20% jitter, never below
    the provider's Retry-After. Runs and outbox entries retry on this schedule, each with its own settings."""
    delay = min(base * 2 ** max(attempt - 1, 0), cap) * random.uniform(0.8, 1.2)
    return max(delay, retry_after or 0)


def dispatch_due(*, now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Claim due integrations and queue one scheduled run each; returns the ids of the runs created.

    `SELECT ... FOR UPDATE SKIP LOCKED`: two dispatchers (two beat processes, or a beat restart overlapping the
    old one) each take different rows and never wait for each other; moving `next_sync_at` forward in the same
    transaction means a row, once claimed, is not due again until its next interval.
    """
    now = now or timezone.now()
    limit = limit or settings.INTEGRATIONS_DISPATCH_BATCH
    created_ids = []
    with transaction.atomic():
        due = list(
            Integration.objects.select_for_update(skip_locked=True)
            .filter(status=IntegrationStatus.ACTIVE, sync_enabled=True)
            .filter(Q(next_sync_at__lte=now) | Q(next_sync_at__isnull=True))
            .order_by(F("next_sync_at").asc(nulls_first=True), "pk")[:limit]
        )
        for integration in due:
            integration.next_sync_at = next_due(integration, now)
            run, created = run_create_locked(integration=integration, trigger=SyncTrigger.SCHEDULE)
            if created:
                run_enqueue(run)
                created_ids.append(run.pk)
        Integration.objects.bulk_update(due, ["next_sync_at"])
    if due:
        logger.info("dispatcher: %s due, %s runs queued", len(due), len(created_ids))
    return created_ids


def retries_start(*, now: datetime | None = None) -> list[int]:
    """Start the next attempt of failed runs whose `next_attempt_at` has come.

    A retry is skipped (its schedule cleared) when the integration is no longer active or has had any run
    since, which already resumed from the same cursors.
    """
    now = now or timezone.now()
    started = []
    with transaction.atomic():
        due = list(
            SyncRun.objects.select_for_update(skip_locked=True)
            .filter(status=SyncRunStatus.FAILED, next_attempt_at__lte=now)
            .select_related("integration")
            .order_by("next_attempt_at")[: settings.INTEGRATIONS_DISPATCH_BATCH]
        )
        for failed in due:
            integration = failed.integration
            superseded = SyncRun.objects.filter(integration=integration, created_at__gt=failed.created_at).exists()
            if integration.status == IntegrationStatus.ACTIVE and not superseded:
                run, created = run_create_locked(
                    integration=integration,
                    trigger=SyncTrigger.RETRY,
                    resources=failed.resources,
                    full=failed.full,
                    mode=failed.mode,
                    failure_ids=failed.failure_ids,
                    retry_of=failed,
                )
                if created:
                    run_enqueue(run)
                    started.append(run.pk)
            failed.next_attempt_at = None
        SyncRun.objects.bulk_update(due, ["next_attempt_at"])
    return started


def stale_runs_fail(*, now: datetime | None = None) -> list[int]:
    """Running runs whose heartbeat stopped (the worker was killed) become failed with a retry scheduled."""
    from integrations.sync.engine import retry_delay

    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.INTEGRATIONS_STALE_RUN_MINUTES)
    failed = []
    with transaction.atomic():
        for run in SyncRun.objects.select_for_update(skip_locked=True).filter(
            status=SyncRunStatus.RUNNING, heartbeat_at__lt=cutoff
        ):
            run.status, run.finished_at, run.error_kind = SyncRunStatus.FAILED, now, "internal"
            run.error_summary = "The worker stopped before the run finished; the next attempt resumes from the cursor."
            if run.attempt < settings.INTEGRATIONS_SYNC_MAX_ATTEMPTS:
                run.next_attempt_at = now + timedelta(seconds=retry_delay(run.attempt))
            run.save()
            Integration.objects.filter(pk=run.integration_id).update(
                consecutive_failures=F("consecutive_failures") + 1, last_sync_at=now
            )
            failed.append(run.pk)
    return failed


def lost_runs_requeue(*, now: datetime | None = None) -> list[int]:
    """Queued runs whose task message never got consumed (lost broker message) are sent again. Bulk runs
    waiting for a slot are the pump's, not lost."""
    from integrations.tasks import sync_run_task

    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.INTEGRATIONS_STALE_RUN_MINUTES)
    ids = list(SyncRun.objects.filter(status=SyncRunStatus.QUEUED, enqueued_at__lt=cutoff).values_list("pk", flat=True))
    if ids:
        SyncRun.objects.filter(pk__in=ids).update(enqueued_at=now)
        for run_id in ids:
            transaction.on_commit(lambda run_id=run_id: sync_run_task.delay(run_id))
    return ids


def bulk_pump() -> list[int]:
    """Enqueue waiting bulk runs while fewer than INTEGRATIONS_BULK_SYNC_CONCURRENCY bulk runs are in flight.

    Called after a bulk start, whenever a bulk run finishes, and by the sweeper; a row lock on the waiting
    runs keeps two pumps from over-filling the slots.
    """
    with transaction.atomic():
        in_flight = SyncRun.objects.filter(trigger=SyncTrigger.BULK, status__in=["queued", "running"]).filter(
            enqueued_at__isnull=False
        )
        slots = settings.INTEGRATIONS_BULK_SYNC_CONCURRENCY - in_flight.count()
        if slots <= 0:
            return []
        waiting = list(
            SyncRun.objects.select_for_update(skip_locked=True)
            .filter(trigger=SyncTrigger.BULK, status=SyncRunStatus.QUEUED, enqueued_at__isnull=True)
            .order_by("created_at", "pk")[:slots]
        )
        for run in waiting:
            run_enqueue(run)
    return [run.pk for run in waiting]


def runs_sweep() -> dict[str, list[int]]:
    return {
        "stale_failed": stale_runs_fail(),
        "retries_started": retries_start(),
        "requeued": lost_runs_requeue(),
        "bulk_enqueued": bulk_pump(),
    }
