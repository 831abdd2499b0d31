"""API serializers. Input and output differ where secrets are involved: credentials are accepted on input and
never rendered (output only says whether any are stored)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from integrations.models import (
    SYNC_INTERVAL_MAX_MINUTES,
    SYNC_INTERVAL_MIN_MINUTES,
    FieldMapping,
    IdentityMapping,
    Integration,
    OutboxEntry,
    PushEvent,
    PushRule,
    RecordFailure,
    SyncRun,
    Transform,
)
from integrations.services import SETTABLE_STATUSES
from jewelia.core.serializers import StrictSerializer


class ResourceSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    direction = serializers.CharField()
    cursor_style = serializers.CharField()
    depends_on = serializers.ListField(child=serializers.CharField())


class RateLimitSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    per_seconds = serializers.FloatField()


class ProviderSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    category = serializers.CharField()
    auth_kind = serializers.CharField()
    capabilities = serializers.ListField(child=serializers.CharField())
    config_schema = serializers.DictField()
    credentials_schema = serializers.DictField(help_text="Which credential fields to send (values never returned).")
    resources = ResourceSerializer(many=True)
    rate_limit = RateLimitSerializer(allow_null=True)
    docs_url = serializers.CharField()


class HealthSerializer(serializers.Serializer):
    status = serializers.CharField()
    reason = serializers.CharField()
    checked_at = serializers.DateTimeField(allow_null=True)
    details = serializers.DictField()


class ActorSerializer(serializers.Serializer):
    type = serializers.CharField()
    id = serializers.CharField()
    label = serializers.CharField()


class IntegrationOutputSerializer(serializers.ModelSerializer):
    has_credentials = serializers.BooleanField(read_only=True)
    health = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = Integration
        fields = [
            "id",
            "name",
            "provider",
            "category",
            "status",
            "config",
            "has_credentials",
            "sync_enabled",
            "sync_interval_minutes",
            "sync_resources",
            "last_sync_at",
            "last_success_at",
            "next_sync_at",
            "consecutive_failures",
            "health",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(HealthSerializer)
    def get_health(self, obj: Integration) -> dict:
        return {
            "status": obj.health_status,
            "reason": obj.health_reason,
            "checked_at": obj.health_checked_at,
            "details": obj.health_details,
        }

    @extend_schema_field(ActorSerializer)
    def get_created_by(self, obj: Integration) -> dict:
        return {"type": obj.created_by_type, "id": obj.created_by_id, "label": obj.created_by_label}


class IntegrationInputSerializer(StrictSerializer):
    """Create and update (unknown fields are refused). `credentials` is write-only and replaces the stored
    credentials as a whole."""

    name = serializers.CharField(max_length=200)
    provider = serializers.CharField(max_length=50)
    config = serializers.DictField(required=False, default=dict)
    credentials = serializers.DictField(required=False, write_only=True)
    status = serializers.ChoiceField(choices=sorted(SETTABLE_STATUSES), required=False)
    sync_enabled = serializers.BooleanField(required=False)
    sync_interval_minutes = serializers.IntegerField(
        required=False, min_value=SYNC_INTERVAL_MIN_MINUTES, max_value=SYNC_INTERVAL_MAX_MINUTES
    )
    sync_resources = serializers.ListField(child=serializers.CharField(max_length=50), required=False)


class SyncStartSerializer(serializers.Serializer):
    resources = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list)
    full = serializers.BooleanField(required=False, default=False, help_text="Full resync: ignore the cursors.")


class SyncAllSerializer(serializers.Serializer):
    full = serializers.BooleanField(required=False, default=False)


class SyncRunSerializer(serializers.ModelSerializer):
    integration = serializers.UUIDField(source="integration_id", read_only=True)
    requested_by = serializers.SerializerMethodField()

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "integration",
            "trigger",
            "mode",
            "resources",
            "full",
            "status",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "fetched",
            "created",
            "updated",
            "unchanged",
            "deleted",
            "failed",
            "error_kind",
            "error_summary",
            "cursor_before",
            "cursor_after",
            "attempt",
            "next_attempt_at",
            "retry_of",
            "requested_by",
        ]
        read_only_fields = fields

    @extend_schema_field(ActorSerializer)
    def get_requested_by(self, obj: SyncRun) -> dict:
        return {"type": obj.requested_by_type, "id": obj.requested_by_id, "label": obj.requested_by_label}


class IdentityMappingSerializer(serializers.ModelSerializer):
    local_type = serializers.SerializerMethodField()
    local_id = serializers.IntegerField(source="object_id")

    class Meta:
        model = IdentityMapping
        fields = [
            "resource",
            "external_id",
            "local_type",
            "local_id",
            "content_hash",
            "source_updated_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_local_type(self, obj: IdentityMapping) -> str:
        return f"{obj.content_type.app_label}.{obj.content_type.model}"


class RecordFailureSerializer(serializers.ModelSerializer):
    class Meta:
        model = RecordFailure
        fields = [
            "id",
            "run",
            "resource",
            "external_id",
            "error",
            "payload_excerpt",
            "attempts",
            "created_at",
            "last_failed_at",
            "retried_at",
            "resolved_at",
        ]
        read_only_fields = fields


class RetryFailuresSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, default=list, help_text="Empty: every open one."
    )


class FieldMappingSerializer(serializers.ModelSerializer):
    transform = serializers.ChoiceField(choices=Transform.choices, default=Transform.NONE)
    enabled = serializers.BooleanField(default=True)

    class Meta:
        model = FieldMapping
        fields = ["resource", "external_path", "local_field", "transform", "enabled"]
        validators = []  # uniqueness is checked for the whole set by the service


class FieldMappingSetSerializer(serializers.Serializer):
    mappings = FieldMappingSerializer(many=True)


class FieldMappingSetOutputSerializer(serializers.Serializer):
    mappings = FieldMappingSerializer(many=True)
    mappable_fields = serializers.DictField(
        child=serializers.DictField(child=serializers.CharField()),
        help_text="Per resource: local field -> value kind, the fields a mapping may set.",
    )
    transforms = serializers.ListField(child=serializers.CharField())


# --- OAuth connect flow -----------------------------------------------------------------------------------------------
class OAuthStartOutputSerializer(serializers.Serializer):
    authorize_url = serializers.CharField(help_text="Send the user's browser here to grant access.")
    state = serializers.CharField(help_text="Signed, single-use; the provider sends it back to the callback.")
    expires_at = serializers.DateTimeField(help_text="The user must come back from the provider before this.")
    redirect_uri = serializers.CharField(help_text="The callback registered with the provider's app.")


class DisconnectSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Forget the tokens even when the provider cannot be reached to revoke them.",
    )


# --- push rules and the outbox ----------------------------------------------------------------------------------------
class PushRuleSerializer(serializers.ModelSerializer):
    event = serializers.ChoiceField(choices=PushEvent.choices)
    channels = serializers.ListField(child=serializers.CharField(max_length=20), required=False, default=list)
    options = serializers.DictField(required=False, default=dict)
    enabled = serializers.BooleanField(default=True)

    class Meta:
        model = PushRule
        fields = ["event", "resource", "channels", "options", "enabled"]
        validators = []  # uniqueness is checked for the whole set by the service


class PushRuleSetSerializer(serializers.Serializer):
    rules = PushRuleSerializer(many=True)


class PushRuleSetOutputSerializer(serializers.Serializer):
    rules = PushRuleSerializer(many=True)
    targets = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Per event: the provider resources a rule for it may push to.",
    )


class OutboxEntrySerializer(serializers.ModelSerializer):
    local_type = serializers.SerializerMethodField()
    local_id = serializers.IntegerField(source="object_id")
    in_flight = serializers.SerializerMethodField()

    class Meta:
        model = OutboxEntry
        fields = [
            "id",
            "event",
            "resource",
            "local_type",
            "local_id",
            "operation",
            "status",
            "attempts",
            "next_attempt_at",
            "in_flight",
            "last_error",
            "external_id",
            "idempotency_key",
            "created_at",
            "updated_at",
            "sent_at",
        ]
        read_only_fields = fields

    def get_local_type(self, obj: OutboxEntry) -> str:
        return f"{obj.content_type.app_label}.{obj.content_type.model}"

    def get_in_flight(self, obj: OutboxEntry) -> bool:
        from django.utils import timezone

        return obj.claimed_until is not None and obj.claimed_until > timezone.now()
