"""Celery tasks of the integrations app (queue "integrations", routed by name in settings).

Tasks take ids, re-read their rows and call a service; state lives in the database, so a task that runs twice
or not at all is repaired by the next sweep. No task retries itself with a countdown: transient failures are
scheduled in `SyncRun.next_attempt_at` (outbox entries: `OutboxEntry.next_attempt_at`) and started by the sweepers.
"""

import logging

from celery import shared_task
from django.conf import settings

logger = logging.getLogger("jewelia.integrations.tasks")


@shared_task(name="integrations.sync_run", acks_late=True)
def sync_run_task(run_id: int) -> None:
    """Execute a queued run. Idempotent: a run that is not queued any more (taken, finished) is left alone."""
    from integrations.sync.engine import sync_run_execute

    sync_run_execute(run_id=run_id)


@shared_task(name="integrations.dispatch_due")
def dispatch_due() -> int:
    """Every minute (beat): queue a scheduled run for each due integration."""
    from integrations.sync.scheduling import dispatch_due as dispatch

    return len(dispatch())


@shared_task(name="integrations.sweep_runs")
def sweep_runs() -> None:
    """Every minute (beat): start due retries, fail dead runs, resend lost ones, fill bulk-sync slots."""
    from integrations.sync.scheduling import runs_sweep

    result = runs_sweep()
    if any(result.values()):
        logger.info("sweep: %s", {name: len(ids) for name, ids in result.items()})


@shared_task(name="integrations.bulk_pump")
def bulk_pump() -> None:
    from integrations.sync.scheduling import bulk_pump as pump

    pump()


@shared_task(name="integrations.check_health")
def check_health(live: bool = False) -> None:
    """Periodically re-assess every integration's health (alerting on changes of state)."""
    from integrations.health import integration_health_refresh
    from integrations.models import Integration

    for integration in Integration.objects.all().iterator():
        integration_health_refresh(integration=integration, live=live)


@shared_task(name="integrations.cleanup")
def cleanup() -> dict:
    from integrations import extensions
    from integrations.oauth import oauth_states_cleanup
    from integrations.outbox.services import outbox_cleanup
    from integrations.services import history_cleanup

    days = settings.INTEGRATIONS_RETENTION_DAYS
    deleted = {
        **history_cleanup(older_than_days=days),
        "outbox_entries": outbox_cleanup(older_than_days=days),
        "oauth_states": oauth_states_cleanup(older_than_days=days),
    }
    for job in extensions.retention_jobs:
        deleted.update(job())
    return deleted


@shared_task(name="integrations.outbox_send", acks_late=True)
def outbox_send_task(entry_id: int) -> None:
    """Send one outbox entry. Idempotent: an entry that is not due, already sent or held by another worker is
    left alone; the provider call carries the entry's idempotency key."""
    from integrations.outbox.services import outbox_entry_send

    outbox_entry_send(entry_id=entry_id)


@shared_task(name="integrations.outbox_sweep")
def outbox_sweep() -> int:
    """Every minute (beat): send due retries, entries whose nudge was lost and entries a dead worker held."""
    from integrations.outbox.services import outbox_sweep as sweep

    return len(sweep())


@shared_task(name="integrations.oauth_expiry_warn")
def oauth_expiry_warn() -> int:
    """Hourly (beat): warn once per token before an OAuth refresh token of known lifetime expires."""
    from integrations.oauth import oauth_refresh_expiry_warn

    return len(oauth_refresh_expiry_warn())
