"""Celery tasks of the webhooks app (queue "webhooks", routed by name in settings).

Tasks carry ids only and re-read their rows; the state (pending, claimed, next attempt) is in the database, so a
task that is lost, runs twice or dies half-way is repaired by the next sweep (DESIGN.md rule 1). `acks_late`
on the processing tasks: they are idempotent, and a message taken by a killed worker is delivered again.
"""

import logging

from celery import shared_task

logger = logging.getLogger("jewelia.webhooks.tasks")


@shared_task(name="webhooks.drain", acks_late=True, ignore_result=True)
def drain() -> int:
    """Process pending events in batches until none is left (published by the receiver's debounced nudge)."""
    from webhooks.services import webhook_events_drain

    return webhook_events_drain()


@shared_task(name="webhooks.process_event", acks_late=True, ignore_result=True)
def process_event(event_id: int) -> None:
    """Process one event if it is still pending (a single replay). A finished or claimed event is left alone."""
    from webhooks.services import webhook_event_process

    webhook_event_process(event_id=event_id)


@shared_task(name="webhooks.sweep", ignore_result=True)
def sweep() -> None:
    """Beat: re-queue due retries and abandoned claims, and start a drain for events left pending."""
    from webhooks.services import webhook_events_sweep

    result = webhook_events_sweep()
    if result["retries"] or result["abandoned"] or result["dead"]:
        logger.info(
            "webhook sweep: %s retries, %s abandoned claims, %s dead",
            len(result["retries"]),
            len(result["abandoned"]),
            len(result["dead"]),
        )


@shared_task(name="webhooks.flush_counters", ignore_result=True)
def flush_counters() -> None:
    """Beat: move rejected-signature and duplicate counts from the cache to the database."""
    from webhooks.services import webhook_counters_flush

    webhook_counters_flush()
