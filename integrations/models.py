"""Integrations as data: one row per connected service, its sync history, identity map, field mappings and
per-resource cursors (STYLE.md "Connectors": the provider class is code, the integration is a row).

Workflow lives in `integrations.services` and `integrations.sync`; these models hold fields, constraints,
indexes, `clean()` and cheap helpers only.
"""

import uuid

import jsonschema
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from integrations import crypto
from integrations.providers.base import Category

# Bounds of a schedule: faster than every 5 minutes hammers providers' rate limits for no gain; slower than
# weekly is not a schedule anyone relies on.
SYNC_INTERVAL_MIN_MINUTES = 5
SYNC_INTERVAL_MAX_MINUTES = 7 * 24 * 60


def provider_choices() -> list[tuple[str, str]]:
    """Choices for `Integration.provider`, read from the registry at validation time (a callable, so adding a
    provider needs no migration)."""
    from integrations.providers import registry

    return list(registry.provider_choices())


class IntegrationStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ERROR = "error", "Error"
    DISCONNECTED = "disconnected", "Disconnected"


class HealthStatus(models.TextChoices):
    UNKNOWN = "unknown", "Not checked yet"
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    FAILING = "failing", "Failing"
    DISCONNECTED = "disconnected", "Disconnected"
    PAUSED = "paused", "Paused"


class Integration(models.Model):
    """One connection of a jeweler's account to a provider (the seed's `integrations` table)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    provider = models.CharField(max_length=50, choices=provider_choices)
    category = models.CharField(max_length=30, choices=[(c.value, c.value.replace("_", " ")) for c in Category])
    status = models.CharField(max_length=20, choices=IntegrationStatus.choices, default=IntegrationStatus.DRAFT)
    config = models.JSONField(default=dict, blank=True, help_text="Non-secret settings, per the provider's schema.")
    credentials_encrypted = models.TextField(blank=True, default="", editable=False)

    sync_enabled = models.BooleanField(default=True)
    sync_interval_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(SYNC_INTERVAL_MIN_MINUTES), MaxValueValidator(SYNC_INTERVAL_MAX_MINUTES)],
    )
    sync_resources = models.JSONField(default=list, blank=True, help_text="Resources to sync; empty means all.")
    last_sync_at = models.DateTimeField(null=True, blank=True, help_text="When the last run finished.")
    last_success_at = models.DateTimeField(null=True, blank=True)
    next_sync_at = models.DateTimeField(null=True, blank=True, help_text="When the dispatcher runs it next.")
    consecutive_failures = models.PositiveIntegerField(default=0)
    refresh_token_warned_for = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="The OAuth refresh-token expiry staff were last warned about (one warning per token).",
    )

    health_status = models.CharField(max_length=20, choices=HealthStatus.choices, default=HealthStatus.UNKNOWN)
    health_checked_at = models.DateTimeField(null=True, blank=True)
    health_reason = models.CharField(max_length=500, blank=True)
    health_details = models.JSONField(default=dict, blank=True)

    created_by_type = models.CharField(max_length=20, blank=True)
    created_by_id = models.CharField(max_length=64, blank=True)
    created_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "integrations"
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(sync_interval_minutes__gte=SYNC_INTERVAL_MIN_MINUTES)
                & Q(sync_interval_minutes__lte=SYNC_INTERVAL_MAX_MINUTES),
                name="integrations_interval_in_bounds",
            ),
        ]
        indexes = [
            # The dispatcher's query: due, active, enabled.
            models.Index(
                fields=["next_sync_at"], condition=Q(status="active", sync_enabled=True), name="integ_due_idx"
            ),
            models.Index(fields=["provider", "name"], name="integ_provider_idx"),
            models.Index(fields=["status", "name"], name="integ_status_idx"),
            models.Index(fields=["health_status", "name"], name="integ_health_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider})"

    # --- credentials: encrypted at rest, decrypted only where a Connection is built ---------------------------
    def get_credentials(self) -> dict:
        return crypto.decrypt_json(self.credentials_encrypted)

    def set_credentials(self, value: dict) -> None:
        self.credentials_encrypted = crypto.encrypt_json(value or {})

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)

    @property
    def provider_impl(self):
        """The registered provider (a stateless instance); raises KeyError for an unknown key."""
        from integrations.providers import registry

        return registry.get_provider(self.provider)

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            provider = self.provider_impl
        except (KeyError, LookupError):
            raise ValidationError({"provider": [f"Unknown provider '{self.provider}'."]}) from None
        try:
            jsonschema.validate(self.config or {}, provider.config_schema)
        except jsonschema.ValidationError as exc:
            path = ".".join(str(part) for part in exc.absolute_path) or "config"
            errors.setdefault("config", []).append(f"{path}: {exc.message}")
        base_url = (self.config or {}).get("base_url") if isinstance(self.config, dict) else None
        if base_url:
            from integrations.urlsafety import check_base_url

            try:
                check_base_url(base_url)
            except Exception as exc:  # the URL checker's refusal, whatever its class: report it on the field
                errors.setdefault("config", []).append(f"base_url: {exc}")
        unknown = sorted(set(self.sync_resources or []) - {r.name for r in provider.resources})
        if unknown:
            errors.setdefault("sync_resources", []).append(f"Unknown resources: {', '.join(unknown)}.")
        if errors:
            raise ValidationError(errors)


class SyncTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual (admin or command)"
    API = "api", "API"
    BULK = "bulk", "Bulk sync"
    WEBHOOK = "webhook", "Webhook"
    RETRY = "retry", "Retry"


class SyncMode(models.TextChoices):
    SYNC = "sync", "Pull sync"
    RETRY_FAILURES = "retry_failures", "Retry record failures"


class SyncRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partial (some records failed)"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN_STATUSES = (SyncRunStatus.QUEUED, SyncRunStatus.RUNNING)


class SyncRun(models.Model):
    """One sync run (the seed's `integration_sync_history`).

    At most one queued-or-running run per integration, enforced by a partial unique index (DESIGN.md rule 3).
    A transient failure leaves the run `failed` with `next_attempt_at` set; the retry sweeper starts the next
    attempt as a new run (`retry_of`) that resumes from the saved cursors. The schedule lives here, not in a
    Celery countdown, so a lost broker message delays a retry but never loses it.
    """

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=20, choices=SyncTrigger.choices)
    mode = models.CharField(max_length=20, choices=SyncMode.choices, default=SyncMode.SYNC)
    resources = models.JSONField(default=list, blank=True)
    failure_ids = models.JSONField(default=list, blank=True, help_text="retry_failures mode: which ones (empty: all).")
    full = models.BooleanField(default=False, help_text="Full resync: ignore the high watermarks.")
    status = models.CharField(max_length=20, choices=SyncRunStatus.choices, default=SyncRunStatus.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last page written; stale means dead.")
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)

    fetched = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    error_kind = models.CharField(max_length=20, blank=True, help_text="transient, auth, permanent or internal")
    error_summary = models.TextField(blank=True)
    cursor_before = models.JSONField(default=dict, blank=True)
    cursor_after = models.JSONField(default=dict, blank=True)

    attempt = models.PositiveIntegerField(default=1)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    retry_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries")
    requested_by_type = models.CharField(max_length=20, blank=True)
    requested_by_id = models.CharField(max_length=64, blank=True)
    requested_by_label = models.CharField(max_length=200, blank=True)

    class Meta:
        db_table = "integration_sync_history"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration"],
                condition=Q(status__in=["queued", "running"]),
                name="integ_one_active_run_per_integration",
            ),
        ]
        indexes = [
            models.Index(fields=["integration", "-created_at"], name="integ_run_history_idx"),
            models.Index(
                fields=["next_attempt_at"], condition=Q(next_attempt_at__isnull=False), name="integ_retry_idx"
            ),
            models.Index(fields=["status", "created_at"], name="integ_run_status_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.integration_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES

    @property
    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("fetched", "created", "updated", "unchanged", "deleted", "failed")}


class RecordFailure(models.Model):
    """One record that could not be transformed or written. Keeps the raw payload so it can be retried alone,
    without a full resync; `payload_excerpt` is what staff read."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="record_failures")
    run = models.ForeignKey(SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="record_failures")
    resource = models.CharField(max_length=50)
    external_id = models.CharField(max_length=255, blank=True)
    error = models.TextField()
    payload = models.JSONField(null=True, blank=True)
    payload_excerpt = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    last_failed_at = models.DateTimeField(auto_now=True)
    retried_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_failed_at", "-id"]
        constraints = [
            # One open failure per record: failing again bumps `attempts` instead of piling up rows.
            models.UniqueConstraint(
                fields=["integration", "resource", "external_id"],
                condition=Q(resolved_at__isnull=True),
                name="integ_one_open_failure_per_record",
            ),
        ]
        indexes = [models.Index(fields=["integration", "resource", "resolved_at"], name="integ_failure_idx")]

    def __str__(self) -> str:
        return f"{self.resource} {self.external_id}: {self.error[:60]}"


class IdentityMapping(models.Model):
    """(integration, resource, external id) -> local object, with the hash of what was last written and the
    source's updated time, so unchanged records are skipped and older versions never overwrite newer ones.

    `resource` is the provider resource whose records share the id space (an order's embedded customer maps
    under the provider's customers resource), falling back to the record kind when the provider lists none.
    """

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="identities")
    resource = models.CharField(max_length=50)
    external_id = models.CharField(max_length=255)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.BigIntegerField()
    content_hash = models.CharField(max_length=64)
    source_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "integration_mappings"
        ordering = ["resource", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "resource", "external_id"], name="integ_identity_unique_external"
            ),
        ]
        indexes = [models.Index(fields=["content_type", "object_id"], name="integ_identity_local_idx")]

    def __str__(self) -> str:
        return f"{self.resource}:{self.external_id} -> {self.content_type_id}:{self.object_id}"


class Transform(models.TextChoices):
    NONE = "none", "As is"
    STRIP = "strip", "Trim whitespace"
    LOWER = "lower", "Lower case"
    UPPER = "upper", "Upper case"
    TITLE = "title", "Title case"
    SPLIT_COMMA = "split_comma", "Split on commas (list)"
    JOIN_COMMA = "join_comma", "Join list with commas"
    BOOLEAN = "boolean", "Yes/no"
    DECIMAL = "decimal", "Decimal number"
    INTEGER = "integer", "Whole number"


class FieldMapping(models.Model):
    """A configured override on top of the provider's default mapping: take `external_path` (dotted, with list
    indexes: `metafields.0.value`) from the raw record, apply `transform`, and set `local_field` of the
    canonical record. Validated on save by `integrations.services.field_mappings_replace` via `clean()`."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="field_mappings")
    resource = models.CharField(max_length=50)
    external_path = models.CharField(max_length=200)
    local_field = models.CharField(max_length=50)
    transform = models.CharField(max_length=20, choices=Transform.choices, default=Transform.NONE)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["resource", "local_field"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "resource", "local_field"], name="integ_mapping_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.resource}: {self.external_path} -> {self.local_field}"

    def clean(self) -> None:
        from integrations.sync.mapping import validate_field_mapping

        validate_field_mapping(
            provider=self.integration.provider_impl,
            resource=self.resource,
            external_path=self.external_path,
            local_field=self.local_field,
            transform=self.transform,
        )


class ResourceCursor(models.Model):
    """Where a resource's sync stands, saved after every page.

    `state` is the page cursor of a pass in progress (empty when the last pass finished) and `since` the lower
    bound that pass started with, so a crashed run resumes exactly where it stopped. `high_watermark` is the
    greatest source-updated time of the last complete pass; the next pass starts at it minus the lookback.
    `pass_watermark` accumulates the greatest time seen by the pass in progress.
    """

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="cursors")
    resource = models.CharField(max_length=50)
    state = models.JSONField(default=dict, blank=True)
    since = models.DateTimeField(null=True, blank=True)
    full = models.BooleanField(default=False, help_text="The pass in progress is a full resync.")
    high_watermark = models.DateTimeField(null=True, blank=True)
    pass_watermark = models.DateTimeField(null=True, blank=True)
    pages = models.PositiveIntegerField(default=0, help_text="Pages written by the pass in progress.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["resource"]
        constraints = [models.UniqueConstraint(fields=["integration", "resource"], name="integ_cursor_unique")]

    def __str__(self) -> str:
        return f"{self.integration_id}:{self.resource}"

    @property
    def in_progress(self) -> bool:
        return bool(self.state)

    def snapshot(self) -> dict:
        return {
            "state": self.state,
            "since": self.since.isoformat() if self.since else None,
            "high_watermark": self.high_watermark.isoformat() if self.high_watermark else None,
        }


# --- OAuth connect flow (integrations.oauth) -------------------------------------------------------------------------
class OAuthState(models.Model):
    """One OAuth authorization attempt: the server half of the signed `state` sent to the provider.

    The signed state carries `nonce`; the callback consumes this row with one conditional UPDATE (single use),
    before `expires_at` (short-lived), and checks it was started for `integration` by `started_by_*` (bound).
    The PKCE verifier is kept encrypted. `outcome` records how the attempt ended, for the audit trail.
    """

    class Outcome(models.TextChoices):
        PENDING = "pending", "Waiting for the provider"
        CONNECTED = "connected", "Connected"
        DENIED = "denied", "Consent denied"
        FAILED = "failed", "Failed"

    nonce = models.CharField(max_length=64, unique=True)
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="oauth_states")
    started_by_type = models.CharField(max_length=20)
    started_by_id = models.CharField(max_length=64, blank=True)
    started_by_label = models.CharField(max_length=200, blank=True)
    redirect_uri = models.CharField(max_length=500)
    code_verifier_encrypted = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.PENDING)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        db_table = "integration_oauth_states"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["created_at"], name="integ_oauth_state_created_idx")]

    def __str__(self) -> str:
        return f"OAuth attempt {self.pk} for {self.integration_id} ({self.outcome})"


# --- push sync (integrations.outbox) ---------------------------------------------------------------------------------
class PushEvent(models.TextChoices):
    """Local changes an integration can be told to push (`integrations.outbox.outbox_enqueue_for`)."""

    ORDER_PLACED = "order.placed", "Order placed"
    ORDER_PAID = "order.paid", "Order paid"
    ORDER_COMPLETED = "order.completed", "Order completed"
    CUSTOMER_CREATED = "customer.created", "Customer created"
    CUSTOMER_UPDATED = "customer.updated", "Customer changed"


class PushRule(models.Model):
    """ "When `event` happens locally, push the object to the provider's `resource`": the per-integration push
    configuration (e.g. completed orders as invoices, paid-at-counter orders as sales receipts).

    `channels` narrows order events to orders of those sales channels (empty: every channel); `options` are
    provider settings for this push that override the integration's config keys of the same name (e.g. the
    QuickBooks item for lines without one). Validated against the provider's push capabilities in `clean()`.
    """

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="push_rules")
    event = models.CharField(max_length=40, choices=PushEvent.choices)
    resource = models.CharField(max_length=50)
    channels = models.JSONField(default=list, blank=True, help_text="Order events only: these channels (empty: all).")
    options = models.JSONField(default=dict, blank=True, help_text="Provider settings for this push.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "integration_push_rules"
        ordering = ["event", "resource"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "event", "resource"], name="integ_push_rule_unique"),
        ]
        # The enqueue path's lookup, inside every order or customer write: enabled rules for one event.
        indexes = [models.Index(fields=["event"], condition=Q(enabled=True), name="integ_push_rule_event_idx")]

    def __str__(self) -> str:
        return f"{self.event} -> {self.resource}"

    def clean(self) -> None:
        from integrations.outbox.rules import push_rule_validate

        if self.integration_id is None:
            return  # the form reports the missing integration itself
        push_rule_validate(
            provider=self.integration.provider_impl,
            event=self.event,
            resource=self.resource,
            channels=self.channels,
            options=self.options,
        )


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (will retry)"
    DEAD = "dead", "Dead (gave up)"


class OutboxOperation(models.TextChoices):
    CREATE = "create", "Create"
    UPDATE = "update", "Update"


SENDABLE_OUTBOX_STATUSES = (OutboxStatus.PENDING, OutboxStatus.FAILED)


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


class OutboxEntry(models.Model):
    """One local change to push to one integration, written in the same transaction as the change (DESIGN.md
    rule 1). The snapshot is built from the local rows when the entry is sent, so it is always current.

    `idempotency_key` is sent with every attempt (QuickBooks `requestid`), so a retry after a crash between
    sending and recording cannot create a second object. `next_attempt_at` is the retry schedule kept in the
    database; `claimed_until` is the lease of the worker sending it (an expired lease means that worker died).
    At most one entry per object and resource is in flight at a time (partial unique index), so a create and
    a later update never race into two creates.
    """

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="outbox")
    rule = models.ForeignKey(PushRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="entries")
    event = models.CharField(max_length=40, choices=PushEvent.choices)
    resource = models.CharField(max_length=50)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.BigIntegerField()
    operation = models.CharField(max_length=10, choices=OutboxOperation.choices, default=OutboxOperation.CREATE)
    idempotency_key = models.CharField(max_length=64, unique=True, default=new_idempotency_key)
    status = models.CharField(max_length=10, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "integration_outbox"
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "outbox entries"
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "resource", "content_type", "object_id"],
                condition=Q(claimed_until__isnull=False),
                name="integ_outbox_one_in_flight",
            ),
        ]
        indexes = [
            # The sweeper's query: sendable entries by due time.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status__in=["pending", "failed"]), name="integ_outbox_due_idx"
            ),
            models.Index(fields=["integration", "status", "-created_at"], name="integ_outbox_list_idx"),
            models.Index(fields=["content_type", "object_id"], name="integ_outbox_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.resource} #{self.object_id} ({self.status})"
