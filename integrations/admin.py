"""Admin for integrations: what staff scan for (status, health, last/next run), actions that call services,
run history inline, record failures with retry, editable field mappings, and secrets that are never shown.

Credentials are a write-only form field: it renders empty (never the stored value, not even encrypted), a blank
submission keeps what is stored, and a JSON object replaces it.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from integrations import services
from integrations.health import integration_health_refresh
from integrations.models import FieldMapping, Integration, RecordFailure, SyncRun, SyncTrigger
from jewelia.core.actors import Actor
from jewelia.core.exceptions import JeweliaError

HEALTH_COLOURS = {
    "healthy": "#2e7d32",
    "degraded": "#ed6c02",
    "failing": "#c62828",
    "disconnected": "#6a1b9a",
    "paused": "#616161",
    "unknown": "#9e9e9e",
}


class CredentialsWidget(forms.PasswordInput):
    """Never renders a value back (PasswordInput with render_value=False), as a wide text box for JSON."""

    def __init__(self):
        super().__init__(render_value=False, attrs={"size": 80, "autocomplete": "off", "placeholder": "{...}"})


class IntegrationAdminForm(forms.ModelForm):
    credentials = forms.CharField(
        required=False,
        widget=CredentialsWidget(),
        help_text="Write-only. A JSON object replaces the stored credentials; leave empty to keep them.",
    )

    class Meta:
        model = Integration
        fields = [
            "name",
            "provider",
            "status",
            "config",
            "sync_enabled",
            "sync_interval_minutes",
            "sync_resources",
        ]

    def clean_credentials(self) -> dict | None:
        raw = self.cleaned_data.get("credentials", "").strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            raise ValidationError('Enter a JSON object, e.g. {"access_token": "..."}.') from None
        if not isinstance(value, dict):
            raise ValidationError("Enter a JSON object.")
        return value


class SyncRunInline(admin.TabularInline):
    model = SyncRun
    fk_name = "integration"
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ["-created_at"]
    fields = ["created_at", "trigger", "status", "duration_seconds", "fetched", "created", "updated", "failed"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("cursor_before", "cursor_after")


class FieldMappingInline(admin.TabularInline):
    model = FieldMapping
    extra = 0
    fields = ["resource", "external_path", "local_field", "transform", "enabled"]


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    form = IntegrationAdminForm
    list_display = ["name", "provider", "status", "health_badge", "last_sync_at", "last_success_at", "next_sync_at"]
    list_filter = ["provider", "category", "status", "health_status"]
    search_fields = ["name"]
    readonly_fields = [
        "id",
        "category",
        "credentials_state",
        "health_badge",
        "health_reason",
        "health_checked_at",
        "last_sync_at",
        "last_success_at",
        "next_sync_at",
        "consecutive_failures",
        "created_by_label",
        "created_at",
        "updated_at",
    ]
    inlines = [FieldMappingInline, SyncRunInline]
    actions = ["sync_now", "check_health", "pause", "resume"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("health_details")

    @admin.display(description="Health", ordering="health_status")
    def health_badge(self, obj: Integration) -> str:
        return format_html(
            '<span style="color:#fff;background:{};padding:2px 8px;border-radius:8px" title="{}">{}</span>',
            HEALTH_COLOURS.get(obj.health_status, "#9e9e9e"),
            obj.health_reason,
            obj.get_health_status_display(),
        )

    @admin.display(description="Credentials")
    def credentials_state(self, obj: Integration) -> str:
        return "stored (encrypted, never shown)" if obj.has_credentials else "none"

    def save_model(self, request, obj, form, change):
        """Through the services, so admin edits get the same validation (provider schema, URL check)."""
        # IntegrationAdminForm.Meta, not form.Meta: the admin's generated form class lists every form field there,
        # the write-only `credentials` included.
        model_fields = IntegrationAdminForm.Meta.fields
        data = {name: form.cleaned_data[name] for name in model_fields if name in form.cleaned_data}
        credentials = form.cleaned_data.get("credentials")
        try:
            if change:
                if credentials is not None:
                    data["credentials"] = credentials
                saved = services.integration_update(integration=obj, data=data)
            else:
                saved = services.integration_create(
                    actor=Actor.for_user(request.user),
                    credentials=credentials or {},
                    **data,
                )
        except JeweliaError as exc:
            raise ValidationError(str(exc.details or exc.message)) from None
        obj.pk = saved.pk
        obj.refresh_from_db()

    def _each(self, request, queryset, func, done: str) -> None:
        count = 0
        for integration in queryset:
            try:
                func(integration)
                count += 1
            except JeweliaError as exc:
                self.message_user(request, f"{integration.name}: {exc.message}", messages.WARNING)
        self.message_user(request, f"{done}: {count}.", messages.SUCCESS)

    @admin.action(description="Sync now")
    def sync_now(self, request, queryset):
        actor = Actor.for_user(request.user)
        self._each(
            request,
            queryset,
            lambda i: services.sync_start(integration=i, trigger=SyncTrigger.MANUAL, actor=actor),
            "Syncs started",
        )

    @admin.action(description="Check health (live)")
    def check_health(self, request, queryset):
        self._each(request, queryset, lambda i: integration_health_refresh(integration=i, live=True), "Checked")

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        self._each(request, queryset, lambda i: services.integration_pause(integration=i), "Paused")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        self._each(request, queryset, lambda i: services.integration_resume(integration=i), "Resumed")


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ["id", "integration", "trigger", "mode", "status", "created_at", "duration_seconds", "fetched"]
    list_display += ["created", "updated", "unchanged", "failed", "attempt", "next_attempt_at"]
    list_filter = ["status", "trigger", "mode", "integration__provider"]
    search_fields = ["integration__name", "error_summary"]
    list_select_related = ["integration"]
    actions = ["cancel"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in SyncRun._meta.fields]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("cursor_before", "cursor_after")

    def has_add_permission(self, request):
        return False

    @admin.action(description="Cancel")
    def cancel(self, request, queryset):
        for run in queryset:
            try:
                services.sync_run_cancel(run=run)
            except JeweliaError as exc:
                self.message_user(request, f"Run {run.pk}: {exc.message}", messages.WARNING)


@admin.register(RecordFailure)
class RecordFailureAdmin(admin.ModelAdmin):
    list_display = [
        "integration",
        "resource",
        "external_id",
        "short_error",
        "attempts",
        "last_failed_at",
        "resolved_at",
    ]
    list_filter = ["resource", ("resolved_at", admin.EmptyFieldListFilter), "integration"]
    search_fields = ["external_id", "error"]
    list_select_related = ["integration"]
    actions = ["retry"]
    exclude = ["payload"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in RecordFailure._meta.fields if field.name != "payload"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("payload")

    def has_add_permission(self, request):
        return False

    @admin.display(description="Error")
    def short_error(self, obj: RecordFailure) -> str:
        return obj.error[:120]

    @admin.action(description="Retry selected failures")
    def retry(self, request, queryset):
        actor = Actor.for_user(request.user)
        by_integration: dict = {}
        for failure in queryset.filter(resolved_at__isnull=True).select_related("integration"):
            by_integration.setdefault(failure.integration, []).append(failure.pk)
        for integration, ids in by_integration.items():
            try:
                services.record_failures_retry(
                    integration=integration, trigger=SyncTrigger.MANUAL, actor=actor, failure_ids=ids
                )
                self.message_user(request, f"{integration.name}: retrying {len(ids)} records.", messages.SUCCESS)
            except JeweliaError as exc:
                self.message_user(request, f"{integration.name}: {exc.message}", messages.WARNING)
