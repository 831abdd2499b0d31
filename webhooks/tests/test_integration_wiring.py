"""Webhook figures reach integration health, and resuming an integration releases the events held while paused."""

import pytest

from integrations.health import integration_health_compute
from integrations.services import integration_pause, integration_resume
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


def test_an_integration_without_a_webhook_secret_says_so_in_its_health(make_integration):
    integration = make_integration(secret=None)

    report = integration_health_compute(integration=integration)

    assert report.status == "healthy"  # polling still works
    assert report.reason == "Waiting for the first sync. No webhook secret is set: every delivery is refused."
    assert report.details["webhooks"]["secret_configured"] is False


def test_dead_webhook_events_degrade_health_until_replayed(make_integration):
    integration = make_integration()
    assert integration_health_compute(integration=integration).status == "healthy"
    WebhookEvent.objects.create(integration=integration, provider_event_id="e1", event_type="x", status="dead")

    report = integration_health_compute(integration=integration)

    assert report.status == "degraded"
    assert report.reason == "1 webhook events are dead (replay them once the cause is fixed)."
    assert report.details["webhooks"]["dead"] == 1


def test_resuming_a_paused_integration_releases_its_held_events(make_integration, django_capture_on_commit_callbacks):
    integration = make_integration()
    integration_pause(integration=integration)
    WebhookEvent.objects.create(integration=integration, provider_event_id="e1", event_type="x", status="held")

    with django_capture_on_commit_callbacks(execute=False):
        integration_resume(integration=integration)

    assert WebhookEvent.objects.get().status == "pending"


def test_replacing_credentials_keeps_the_webhook_secret(make_integration):
    from integrations.services import integration_update
    from webhooks.selectors import webhook_secret_configured

    integration = make_integration()

    integration_update(integration=integration, data={"credentials": {"access_token": "new-token"}})

    integration.refresh_from_db()
    assert integration.get_credentials()["access_token"] == "new-token"
    assert webhook_secret_configured(integration=integration)


def test_credentials_a_handler_refreshes_survive_the_event_failing(make_integration, deliver, monkeypatch):
    """A handler may refresh a rotating token on its way to the provider; if the event then fails, the new token
    must still be stored (the provider has already invalidated the old one)."""
    from integrations.errors import TransientError
    from webhooks.services import webhook_events_drain
    from webhooks.tests.fakes import FakeHooksProvider, event

    def refresh_then_fail(inbound, connection):
        connection.save_credentials({**connection.credentials, "access_token": "rotated"})
        raise TransientError("provider unavailable after the refresh")

    handlers = FakeHooksProvider.webhook_handlers
    monkeypatch.setattr(
        FakeHooksProvider, "webhook_handlers", lambda self: {**handlers(self), "refreshing": refresh_then_fail}
    )
    integration = make_integration()
    assert deliver(integration, event("refreshing", {"id": 1})).status_code == 200

    webhook_events_drain()

    integration.refresh_from_db()
    assert WebhookEvent.objects.get().status == "failed"
    assert integration.get_credentials()["access_token"] == "rotated"
