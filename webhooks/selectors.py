"""Reads of the webhooks app: event lists and details for the API and admin, and the figures integration health
uses (error rate, last received, dead events, missing secret, refused and duplicate deliveries)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from integrations import crypto
from integrations.models import Integration
from integrations.providers import registry
from integrations.providers.base import Capability
from jewelia.core.exceptions import NotFound
from webhooks import counters
from webhooks.models import WebhookCounter, WebhookEvent, WebhookEventStatus
from webhooks.secrets import previous_secret_valid_until, secrets_from_credentials

# Heavy columns a list never shows.
LIST_DEFERRED = ("raw_body", "payload", "headers")


def webhook_events_query(
    *,
    integration: Integration,
    statuses: list[str] | None = None,
    event_type: str = "",
    received_after: datetime | None = None,
    received_before: datetime | None = None,
    manual: bool | None = None,
) -> QuerySet[WebhookEvent]:
    """One integration's events, newest first, filtered; payload, raw body and headers deferred."""
    queryset = WebhookEvent.objects.filter(integration=integration).defer(*LIST_DEFERRED)
    if statuses:
        queryset = queryset.filter(status__in=statuses)
    if event_type:
        queryset = queryset.filter(event_type=event_type)
    if received_after is not None:
        queryset = queryset.filter(received_at__gte=received_after)
    if received_before is not None:
        queryset = queryset.filter(received_at__lt=received_before)
    if manual is not None:
        queryset = queryset.filter(manual=manual)
    return queryset.order_by("-received_at", "-id")


@dataclass(frozen=True)
class WebhookEndpoint:
    """Where and what a provider delivers for one integration: what staff paste into the provider's dashboard."""

    path: str  # the receiver's path; the app-level one for providers with one URL per developer app
    app_level: bool
    secret_setting: str  # the setting holding the app's secrets (app-level), else "" (the integration's own)
    content_types: tuple[str, ...]
    event_types: tuple[str, ...]  # the types with a handler: subscribe to these


def webhook_endpoint_get(*, integration: Integration) -> WebhookEndpoint | None:
    """The integration's webhook endpoint, or None when its provider does not send webhooks."""
    try:
        provider = registry.get_provider(integration.provider)
    except KeyError:
        return None
    if not provider.has(Capability.WEBHOOKS):
        return None
    if provider.app_webhooks:
        path = reverse("webhook-receive-provider", args=[provider.key])
    else:
        path = reverse("webhook-receive", args=[integration.pk])
    return WebhookEndpoint(
        path=path,
        app_level=provider.app_webhooks,
        secret_setting=provider.app_webhook_secrets_setting if provider.app_webhooks else "",
        content_types=tuple(provider.webhook_content_types),
        event_types=tuple(sorted(provider.webhook_handlers())),
    )


def webhook_event_get(*, integration: Integration, event_id: int) -> WebhookEvent:
    event = WebhookEvent.objects.filter(integration=integration, pk=event_id).first()
    if event is None:
        raise NotFound("No such webhook event for this integration.")
    return event


def webhook_secret_configured(*, integration: Integration, now: datetime | None = None) -> bool:
    """Whether deliveries for this integration can be verified at all (without a secret they are all refused):
    its own secret, or, for a provider with app-level webhooks (QuickBooks), the app's secret setting."""
    try:
        provider = registry.get_provider(integration.provider)
    except KeyError:
        provider = None
    if provider is not None and provider.app_webhooks and provider.app_webhook_secrets():
        return True
    try:
        credentials = crypto.decrypt_json(integration.credentials_encrypted)
    except crypto.DecryptionError:
        return False
    return bool(secrets_from_credentials(credentials, now=now or timezone.now()))


def webhook_secret_status(*, integration: Integration, now: datetime | None = None) -> dict[str, Any]:
    """Whether a secret is set, and until when the one it replaced still verifies (never the secrets)."""
    now = now or timezone.now()
    try:
        credentials = crypto.decrypt_json(integration.credentials_encrypted)
    except crypto.DecryptionError:
        credentials = {}
    valid = secrets_from_credentials(credentials, now=now)
    until = previous_secret_valid_until(credentials) if len(valid) > 1 else None
    return {"secret_configured": bool(valid), "previous_secret_valid_until": until}


def webhook_health_figures(*, integration: Integration, now: datetime | None = None) -> dict[str, Any]:
    """Webhook figures for integration health. Empty for a provider without webhooks.

    `error_rate_24h` is failed + dead over all events received in the last 24 h that finished or failed;
    `dead` counts every dead event (they wait for a person); refused and duplicate deliveries are counted per
    UTC day (today), including counts not flushed from the cache yet. `endpoint` is the receiver's path.
    A few indexed queries.
    """
    endpoint = webhook_endpoint_get(integration=integration)
    if endpoint is None:
        return {}
    now = now or timezone.now()
    events = WebhookEvent.objects.filter(integration=integration)
    last_received = events.order_by("-received_at").values_list("received_at", flat=True).first()
    day = events.filter(received_at__gte=now - timedelta(hours=24)).aggregate(
        received=Count("id"),
        finished=Count("id", filter=Q(status__in=["processed", "ignored", "failed", "dead"])),
        failed=Count("id", filter=Q(status__in=["failed", "dead"])),
    )
    by_status = dict(
        events.filter(status__in=["dead", "held", "pending", "processing", "failed"])
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    refused = webhook_counters_get(integration=integration, days=[now.date()])[now.date()]
    return {
        "endpoint": endpoint.path,
        "secret_configured": webhook_secret_configured(integration=integration, now=now),
        "last_received_at": last_received.isoformat() if last_received else None,
        "received_24h": day["received"],
        "failed_24h": day["failed"],
        "error_rate_24h": round(day["failed"] / day["finished"], 3) if day["finished"] else 0.0,
        "dead": by_status.get(WebhookEventStatus.DEAD, 0),
        "failed": by_status.get(WebhookEventStatus.FAILED, 0),
        "held": by_status.get(WebhookEventStatus.HELD, 0),
        "backlog": by_status.get(WebhookEventStatus.PENDING, 0) + by_status.get(WebhookEventStatus.PROCESSING, 0),
        "rejected_signatures_today": refused[counters.REJECTED],
        "duplicates_today": refused[counters.DUPLICATES],
    }


def webhook_counters_get(*, integration: Integration, days: list[date]) -> dict[date, dict[str, int]]:
    """Refused-signature and duplicate counts per day: the database rows plus what the cache has not flushed."""
    result = {day: {kind: 0 for kind in counters.KINDS} for day in days}
    for row in WebhookCounter.objects.filter(integration=integration, day__in=days):
        result[row.day] = {counters.REJECTED: row.rejected_signatures, counters.DUPLICATES: row.duplicates}
    try:
        pending = counters.counters_pending(integration_id=str(integration.pk), days=days)
    except Exception:  # Redis down: the flushed figures are still worth showing
        pending = {}
    for (day, kind), value in pending.items():
        result[day][kind] += value
    return result
