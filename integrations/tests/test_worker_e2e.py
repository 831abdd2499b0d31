"""The scheduled path end to end: beat's dispatcher task on Redis -> a real Celery worker claims the due
integration, queues and runs the sync against the Shopify sandbox over HTTP -> rows in PostgreSQL."""

import time

import pytest
from django.utils import timezone

from integrations.models import Integration, SyncRun
from jewelia.core.actors import Actor
from orders.models import Order


@pytest.fixture
def worker(transactional_db, monkeypatch, request):
    # The worker process reads its settings from the environment: let it reach the sandbox on 127.0.0.1.
    monkeypatch.setenv("INTEGRATIONS_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    return request.getfixturevalue("celery_worker_process")


def _wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the worker")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_dispatcher_on_a_real_worker_syncs_a_due_integration(worker, make_shopify_sandbox, settings):
    from integrations.services import integration_create
    from integrations.tasks import dispatch_due

    sandbox = make_shopify_sandbox()
    integration = integration_create(
        actor=Actor.system("test"),
        name="Scheduled store",
        provider="shopify",
        config=sandbox.config(),
        credentials=sandbox.credentials(),
    )
    before = timezone.now()

    dispatch_due.delay()  # what beat sends every minute

    run = _wait_for(
        lambda: SyncRun.objects.filter(integration=integration, status__in=["succeeded", "partial", "failed"]).first()
    )
    assert (run.trigger, run.status, run.error_summary) == ("schedule", "succeeded", "")
    assert (run.fetched, run.created, run.failed) == (69, 76, 0)
    assert Order.objects.count() == 30
    integration.refresh_from_db()
    assert integration.next_sync_at > before + timezone.timedelta(minutes=integration.sync_interval_minutes * 0.8)
    assert integration.last_success_at is not None

    dispatch_due.delay()  # not due any more: nothing new is queued
    time.sleep(2)
    assert SyncRun.objects.filter(integration=integration).count() == 1
    assert Integration.objects.get(pk=integration.pk).health_status == "healthy"
