"""The webhook inbox (the seed's `webhook_events`) and its daily counters.

Every validly signed delivery becomes one `WebhookEvent` row before the provider gets its 2xx (DESIGN.md rule 1);
processing state, the retry schedule and the outcome live on the same row, so a lost broker message or a killed
worker delays an event but never loses it. De-duplication is the unique constraint on (integration, provider
event id), kept for the whole retention period (at least 7 days: longer than Stripe's 3 days and Shopify's 4
hours of retries).

Workflow lives in `webhooks.services`; these models hold fields, constraints and indexes only.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from integrations.models import Integration


class WebhookEventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    HELD = "held", "Held (integration not active)"
    PROCESSING = "processing", "Processing"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (type not handled)"
    FAILED = "failed", "Failed (will retry)"
    DEAD = "dead", "Dead (gave up)"


# The retention of finished events is also the de-duplication window: it must outlast every provider's retries
# (Stripe 3 days, Shopify 4 hours).
MIN_RETENTION_DAYS = 7

# Statuses staff or the API may send back through processing. Pending and processing events are already on
# their way; held ones wait for the integration to be active again.
REPLAYABLE_STATUSES = (
    WebhookEventStatus.PROCESSED,
    WebhookEventStatus.IGNORED,
    WebhookEventStatus.FAILED,
    WebhookEventStatus.DEAD,
)


class WebhookEvent(models.Model):
    """One received (or hand-made) provider event.

    `raw_body` holds the exact bytes that were signed, so an event can be re-verified or re-parsed later;
    `payload` the parsed JSON (null when the body was not JSON: such an event is stored `failed`, never lost).
    `attempts` counts processing claims: a claim increments it and the processor only finishes the claim whose
    number it holds, so a claim taken over by the sweeper (after a killed worker) cannot be finished twice.
    """

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="webhook_events")
    provider_event_id = models.CharField(
        max_length=255, help_text="The provider's de-duplication id (Stripe event id, Shopify webhook id)."
    )
    group_id = models.CharField(
        max_length=255, blank=True, default="", help_text="Shared by the deliveries of one event (Shopify event id)."
    )
    event_type = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=WebhookEventStatus.choices, default=WebhookEventStatus.PENDING)
    received_at = models.DateTimeField(default=timezone.now)
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="When the provider says it happened.")
    headers = models.JSONField(default=dict, blank=True, help_text="Delivery headers, without credentials.")
    raw_body = models.BinaryField(default=b"")
    payload = models.JSONField(null=True, blank=True)
    signature_valid = models.BooleanField(
        null=True, blank=True, help_text="True for verified deliveries; empty for events made by hand."
    )
    manual = models.BooleanField(default=False, help_text="Created by hand (API or admin), not delivered.")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When processing was last claimed.")
    last_error = models.TextField(blank=True)
    result = models.CharField(max_length=500, blank=True, help_text="What processing did (counts, a note).")
    processed_at = models.DateTimeField(null=True, blank=True)
    replay_count = models.PositiveIntegerField(default=0)
    created_by_type = models.CharField(max_length=20, blank=True)
    created_by_id = models.CharField(max_length=64, blank=True)
    created_by_label = models.CharField(max_length=200, blank=True)

    class Meta:
        db_table = "webhook_events"
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "provider_event_id"], name="webhook_event_unique_delivery"),
        ]
        indexes = [
            # The drain claims pending events in arrival order; the sweeper finds due retries and stale claims.
            models.Index(fields=["id"], condition=Q(status="pending"), name="webhook_pending_idx"),
            models.Index(fields=["next_attempt_at"], condition=Q(status="failed"), name="webhook_retry_due_idx"),
            models.Index(fields=["claimed_at"], condition=Q(status="processing"), name="webhook_claimed_idx"),
            # Lists and filters, always within one integration, walk this one. Events needing attention get an
            # index of their own that a new (pending) delivery never enters: every index a delivery writes is
            # paid for on the hot path, so status and type filters on ordinary events scan the first one.
            models.Index(fields=["integration", "-received_at"], name="webhook_integ_received_idx"),
            models.Index(
                fields=["integration", "status", "-received_at"],
                condition=Q(status__in=["failed", "dead", "held"]),
                name="webhook_integ_attention_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.provider_event_id} ({self.status})"


class DeadWebhookEvent(WebhookEvent):
    """The dead-letter view in the admin: the same rows, restricted to `dead` events."""

    class Meta:
        proxy = True
        verbose_name = "dead webhook event"
        verbose_name_plural = "dead webhook events (dead letters)"


class WebhookCounter(models.Model):
    """Deliveries refused or absorbed without a row of their own, per integration and day: rejected signatures
    (a flood of forgeries must not fill the database) and duplicates. Counted in the cache on the hot path and
    flushed here periodically (DESIGN.md rule 8)."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="webhook_counters")
    day = models.DateField()
    rejected_signatures = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "webhook_counters"
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["integration", "day"], name="webhook_counter_unique_day")]

    def __str__(self) -> str:
        return f"{self.integration_id} {self.day}: {self.rejected_signatures} rejected, {self.duplicates} duplicates"
