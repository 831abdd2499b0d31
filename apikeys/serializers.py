"""Input and output shapes of `/api/api-keys/`. No output ever carries `key_hash`; only create and rotate
responses carry the key itself, once."""

from datetime import timedelta

from rest_framework import serializers

from jewelia.core.serializers import StrictSerializer

from .durations import DurationSpecField
from .models import ApiKey, KeyStatus
from .scopes import SCOPES
from .services import MAX_GRACE_PERIOD


class ApiKeyWriteIn(StrictSerializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(SCOPES)), allow_empty=False, max_length=len(SCOPES)
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    allowed_networks = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=50)
    rate_limit_per_minute = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)

    def validate_scopes(self, value):
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Scopes are listed more than once.")
        return value


class RotateIn(StrictSerializer):
    grace_period = DurationSpecField(max_value=MAX_GRACE_PERIOD, required=False)


class ListFiltersIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=KeyStatus.choices, required=False)
    expiring_within = DurationSpecField(max_value=timedelta(days=366), required=False)


class UsageFiltersIn(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=366, default=30)


class ActorOut(serializers.Serializer):
    type = serializers.CharField(source="kind")
    id = serializers.CharField()
    label = serializers.CharField()


class ApiKeyOut(serializers.ModelSerializer):
    identifier = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    created_by = ActorOut(read_only=True)
    revoked_by = ActorOut(read_only=True, allow_null=True)
    replaces = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    replaced_by = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "identifier",
            "name",
            "description",
            "status",
            "scopes",
            "allowed_networks",
            "rate_limit_per_minute",
            "created_at",
            "created_by",
            "expires_at",
            "revoked_at",
            "revoked_by",
            "replaces",
            "replaced_by",
            "grace_ends_at",
            "last_used_at",
            "last_used_ip",
        ]
        read_only_fields = fields

    def get_replaced_by(self, key: ApiKey) -> int | None:
        replacement = getattr(key, "replaced_by", None)
        return replacement.pk if replacement is not None else None


class UsageSummaryOut(serializers.Serializer):
    requests_today = serializers.IntegerField()
    errors_today = serializers.IntegerField()
    requests_last_30_days = serializers.IntegerField()
    errors_last_30_days = serializers.IntegerField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    last_used_ip = serializers.IPAddressField(allow_null=True)


class ApiKeyDetailOut(ApiKeyOut):
    usage = UsageSummaryOut(read_only=True, source="usage_summary")

    class Meta(ApiKeyOut.Meta):
        fields = [*ApiKeyOut.Meta.fields, "usage"]
        read_only_fields = fields


class ApiKeyCreatedOut(ApiKeyOut):
    """A new key's row plus the key itself, passed in the context (never set on the model instance)."""

    key = serializers.SerializerMethodField(help_text="The API key. Shown only in this response; store it now.")

    class Meta(ApiKeyOut.Meta):
        fields = ["key", *ApiKeyOut.Meta.fields]
        read_only_fields = fields

    def get_key(self, key: ApiKey) -> str:
        return self.context["key"]


class ApiKeyRotatedOut(ApiKeyCreatedOut):
    replaced = ApiKeyOut(read_only=True, source="replaces", help_text="The old key, working until grace_ends_at.")

    class Meta(ApiKeyCreatedOut.Meta):
        fields = [*ApiKeyCreatedOut.Meta.fields, "replaced"]
        read_only_fields = fields


class UsageDayOut(serializers.Serializer):
    date = serializers.DateField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()


class UsageOut(serializers.Serializer):
    days = serializers.IntegerField()
    daily = UsageDayOut(many=True)
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    last_used_ip = serializers.IPAddressField(allow_null=True)
