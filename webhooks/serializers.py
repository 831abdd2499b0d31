"""Input and output serializers of the webhook events API."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from webhooks.models import WebhookEvent, WebhookEventStatus
from webhooks.secrets import MIN_SECRET_LENGTH


class CommaSeparatedChoicesField(serializers.ListField):
    """`?status=failed,dead`, `?status=failed&status=dead` and a JSON list alike."""

    def __init__(self, *, choices, **kwargs):
        super().__init__(child=serializers.ChoiceField(choices=choices), **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [data]
        parts = [part.strip() for value in data for part in str(value).split(",") if part.strip()]
        return super().to_internal_value(parts)


class EventFilterSerializer(serializers.Serializer):
    """Filters shared by the list and the bulk replay."""

    status = CommaSeparatedChoicesField(
        choices=WebhookEventStatus.choices, required=False, help_text="One or more statuses (comma-separated)."
    )
    type = serializers.CharField(required=False, allow_blank=True, max_length=100, help_text="Exact event type.")
    received_after = serializers.DateTimeField(required=False, help_text="Received at or after (ISO 8601).")
    received_before = serializers.DateTimeField(required=False, help_text="Received before (ISO 8601).")
    manual = serializers.BooleanField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        after, before = attrs.get("received_after"), attrs.get("received_before")
        if after and before and after >= before:
            raise serializers.ValidationError({"received_before": ["Must be later than received_after."]})
        return attrs

    def selector_kwargs(self) -> dict:
        data = self.validated_data
        return {
            "statuses": data.get("status") or None,
            "event_type": data.get("type", ""),
            "received_after": data.get("received_after"),
            "received_before": data.get("received_before"),
            "manual": data.get("manual"),
        }


class BulkReplayInputSerializer(EventFilterSerializer):
    confirm = serializers.BooleanField(
        default=False, help_text="false (default): only report how many events would be replayed."
    )
    expected = serializers.IntegerField(
        required=False, min_value=0, help_text="The count the dry run reported; refused (409) if it changed."
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not attrs.get("status"):
            attrs["status"] = [WebhookEventStatus.FAILED, WebhookEventStatus.DEAD]
        return attrs


class BulkReplayOutputSerializer(serializers.Serializer):
    would_replay = serializers.IntegerField(required=False)
    replayed = serializers.IntegerField(required=False)


class ManualEventInputSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=100, help_text="An event type the provider's handlers know.")
    payload = serializers.JSONField(help_text="The event as the provider would send it (a Stripe Event object, ...).")
    event_id = serializers.CharField(
        required=False, allow_blank=True, max_length=255, help_text="The provider's event id, when known."
    )
    occurred_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class WebhookEventSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="event_type")
    event_id = serializers.CharField(source="provider_event_id")

    class Meta:
        model = WebhookEvent
        fields = [
            "id",
            "event_id",
            "group_id",
            "type",
            "status",
            "received_at",
            "occurred_at",
            "attempts",
            "next_attempt_at",
            "processed_at",
            "last_error",
            "result",
            "manual",
            "signature_valid",
            "replay_count",
        ]
        read_only_fields = fields


class WebhookEventDetailSerializer(WebhookEventSerializer):
    integration = serializers.UUIDField(source="integration_id", read_only=True)
    body = serializers.SerializerMethodField(help_text="The raw body as received (UTF-8; invalid bytes replaced).")

    class Meta(WebhookEventSerializer.Meta):
        fields = [*WebhookEventSerializer.Meta.fields, "integration", "headers", "payload", "body", "created_by_label"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_body(self, event: WebhookEvent) -> str:
        return bytes(event.raw_body or b"").decode("utf-8", errors="replace")


class SecretInputSerializer(serializers.Serializer):
    secret = serializers.CharField(
        write_only=True,
        min_length=MIN_SECRET_LENGTH,
        max_length=500,
        trim_whitespace=True,
        help_text="The provider's signing secret (Stripe `whsec_...`, the Shopify app client secret or admin "
        "signing key). Never returned.",
    )


class SecretOutputSerializer(serializers.Serializer):
    secret_configured = serializers.BooleanField()
    previous_secret_valid_until = serializers.DateTimeField(
        allow_null=True, help_text="Until when deliveries signed with the replaced secret are still accepted."
    )


class WebhookSetupSerializer(serializers.Serializer):
    """What to enter in the provider's dashboard for this integration's webhooks."""

    url = serializers.URLField(help_text="Where the provider delivers (the absolute receiver URL).")
    app_level = serializers.BooleanField(
        help_text="True when the provider has one webhook URL per developer app, shared by every connected "
        "account (QuickBooks): deliveries are routed to this integration by its account id."
    )
    secret_setting = serializers.CharField(
        help_text="App-level only: the server setting holding the app's signing secret(s); empty otherwise."
    )
    content_types = serializers.ListField(child=serializers.CharField())
    event_types = serializers.ListField(
        child=serializers.CharField(), help_text="The event types this integration handles: subscribe to these."
    )
    secret_configured = serializers.BooleanField(
        help_text="Whether deliveries can be verified (without a secret every delivery is refused with 401)."
    )
    previous_secret_valid_until = serializers.DateTimeField(allow_null=True)
