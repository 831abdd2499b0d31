"""Inbox services and selectors: secrets, health figures, counters flush, pruning, the retention check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jewelia.core.exceptions import ValidationFailed
from webhooks.apps import check_retention
from webhooks.models import WebhookCounter, WebhookEvent
from webhooks.secrets import PREVIOUS, ROTATED_AT, SECRET
from webhooks.selectors import webhook_counters_get, webhook_health_figures, webhook_secret_configured
from webhooks.services import (
    webhook_counters_flush,
    webhook_events_drain,
    webhook_events_prune,
    webhook_secret_set,
)
from webhooks.tests.conftest import SECRET as CURRENT
from webhooks.tests.fakes import delivery, event

pytestmark = pytest.mark.django_db


def test_secret_is_stored_encrypted_with_the_credentials(integration):
    integration.refresh_from_db()

    assert CURRENT not in integration.credentials_encrypted
    assert integration.get_credentials() == {"access_token": "tok-123", SECRET: CURRENT}


def test_rotating_keeps_the_previous_secret_and_when_it_was_replaced(integration):
    webhook_secret_set(integration=integration, secret="fk_next_secret")

    credentials = type(integration).objects.get(pk=integration.pk).get_credentials()
    assert (credentials[SECRET], credentials[PREVIOUS]) == ("fk_next_secret", CURRENT)
    assert abs((timezone.now() - timezone.datetime.fromisoformat(credentials[ROTATED_AT])).total_seconds()) < 5


def test_a_short_secret_is_refused(integration):
    with pytest.raises(ValidationFailed):
        webhook_secret_set(integration=integration, secret="short")


def test_missing_secret_is_reported(make_integration):
    assert webhook_secret_configured(integration=make_integration(secret=None)) is False
    assert webhook_secret_configured(integration=make_integration(name="With secret")) is True


def test_health_figures_count_errors_dead_events_and_refusals(integration, deliver, post_delivery):
    deliver(integration, event("customer.updated", {"id": 1, "name": "A", "email": "a@example.com"}))
    deliver(integration, event("broken", {}))
    deliver(integration, event("flaky", {}))
    deliver(integration, event("shop.redacted", {}))
    webhook_events_drain()
    body, headers = delivery(event("customer.updated", {}), "forged")
    post_delivery(integration, body, headers)

    figures = webhook_health_figures(integration=integration)

    assert (figures["secret_configured"], figures["endpoint"]) == (True, f"/api/webhooks/{integration.pk}/")
    assert figures["received_24h"] == 4
    assert (figures["failed_24h"], figures["error_rate_24h"]) == (2, 0.5)
    assert (figures["dead"], figures["failed"], figures["held"], figures["backlog"]) == (1, 1, 0, 0)
    assert (figures["rejected_signatures_today"], figures["duplicates_today"]) == (1, 0)
    assert figures["last_received_at"] == WebhookEvent.objects.latest("received_at").received_at.isoformat()


def test_health_figures_for_an_integration_without_events(make_integration):
    figures = webhook_health_figures(integration=make_integration(secret=None))

    assert figures["secret_configured"] is False
    assert (figures["last_received_at"], figures["error_rate_24h"], figures["dead"]) == (None, 0.0, 0)


def test_counters_flush_moves_counts_to_the_database_and_adds_to_them(integration, deliver):
    payload = event("customer.updated", {}, event_id="twice")
    for _ in range(3):
        deliver(integration, payload)
    today = timezone.now().date()

    assert webhook_counters_flush() == 1
    deliver(integration, payload)
    webhook_counters_flush()

    row = WebhookCounter.objects.get(integration=integration, day=today)
    assert (row.duplicates, row.rejected_signatures) == (3, 0)
    assert webhook_counters_get(integration=integration, days=[today])[today]["duplicates"] == 3
    assert webhook_counters_flush() == 0


def _event_row(integration, event_id: str, status: str, age_days: int) -> WebhookEvent:
    return WebhookEvent.objects.create(
        integration=integration,
        provider_event_id=event_id,
        event_type="customer.updated",
        status=status,
        received_at=timezone.now() - timedelta(days=age_days),
    )


@override_settings(WEBHOOKS_RETENTION_DAYS=30, WEBHOOKS_FAILED_RETENTION_DAYS=90)
def test_prune_deletes_finished_events_past_retention_and_keeps_failed_ones_longer(integration):
    for status in ("processed", "ignored", "failed", "dead", "pending", "held"):
        _event_row(integration, f"{status}-old", status, 31)
        _event_row(integration, f"{status}-ancient", status, 91)
    _event_row(integration, "processed-recent", "processed", 29)

    result = webhook_events_prune()

    assert result == {"webhook_events": 4, "failed_webhook_events": 2, "webhook_counters": 0}
    left = set(WebhookEvent.objects.values_list("provider_event_id", flat=True))
    assert left == {
        "processed-recent",
        "failed-old",
        "dead-old",
        "pending-old",
        "pending-ancient",
        "held-old",
        "held-ancient",
    }


def test_prune_refuses_a_retention_shorter_than_the_dedup_window(integration):
    with pytest.raises(ValidationFailed):
        webhook_events_prune(retention_days=6)


@override_settings(WEBHOOKS_RETENTION_DAYS=3)
def test_system_check_refuses_a_retention_under_seven_days():
    assert [error.id for error in check_retention()] == ["webhooks.E001"]


@pytest.mark.services
def test_with_redis_counts_are_atomic_increments_shared_by_every_process():
    from webhooks import counters

    assert isinstance(counters._backend(), counters._RedisCounters)  # not a read-modify-write of a cached dict


def test_setting_a_secret_refreshes_health_that_said_it_was_missing(make_integration):
    from integrations.health import integration_health_refresh

    integration = make_integration(secret=None)
    integration_health_refresh(integration=integration)
    integration.refresh_from_db()
    assert "No webhook secret is set" in integration.health_reason

    webhook_secret_set(integration=integration, secret="fk_secret_current_0001")

    integration.refresh_from_db()
    assert "No webhook secret is set" not in integration.health_reason
