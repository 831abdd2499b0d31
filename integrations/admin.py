"""Admin for integrations: what staff scan for (status, health, last/next run), actions that call services,
run history inline, record failures with retry, editable field mappings, and secrets that are never shown.

Credentials are a write-only form field: it renders empty (never the stored value, not even encrypted), a blank
submission keeps what is stored, and a JSON object replaces it.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from integrations import extensions, oauth, services
from integrations.health import integration_health_refresh
from integrations.models import (
    FieldMapping,
    Integration,
    OutboxEntry,
    OutboxStatus,
    PushRule,
    RecordFailure,
    SyncRun,
    SyncTrigger,
)
from integrations.outbox import services as outbox_services
from integrations.providers.base import AuthKind
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
    change_form_template = "admin/integrations/integration/change_form.html"
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
        "oauth_grant",
        "push_rules_summary",
        "outbox_summary",
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

    @admin.display(description="OAuth grant")
    def oauth_grant(self, obj: Integration) -> str:
        """When the access and refresh tokens expire (never the tokens themselves)."""
        if obj.pk is None or not _uses_oauth(obj):
            return "-"
        credentials = obj.get_credentials()
        if not credentials.get("refresh_token") and not credentials.get("access_token"):
            return "not connected: use Connect"
        access = credentials.get("expires_at") or "unknown"
        refresh = credentials.get("refresh_token_expires_at") or "unknown"
        return f"connected; access token expires {access}, refresh token expires {refresh}"

    @admin.display(description="Push rules")
    def push_rules_summary(self, obj: Integration) -> str:
        if obj.pk is None:
            return "-"
        rules = [str(rule) for rule in obj.push_rules.filter(enabled=True)]
        url = reverse("admin:integrations_pushrule_changelist") + f"?integration__id__exact={obj.pk}"
        add = reverse("admin:integrations_pushrule_add") + f"?integration={obj.pk}"
        return format_html(
            '{} (<a href="{}">edit</a>, <a href="{}">add</a>)', "; ".join(rules) or "nothing is pushed", url, add
        )

    @admin.display(description="Outbox")
    def outbox_summary(self, obj: Integration) -> str:
        if obj.pk is None:
            return "-"
        counts = OutboxEntry.objects.filter(integration=obj).aggregate(
            pending=Count("id", filter=Q(status=OutboxStatus.PENDING)),
            failed=Count("id", filter=Q(status=OutboxStatus.FAILED)),
            dead=Count("id", filter=Q(status=OutboxStatus.DEAD)),
        )
        url = reverse("admin:integrations_outboxentry_changelist") + f"?integration__id__exact={obj.pk}"
        return format_html(
            '<a href="{}">{} pending, {} failed, {} dead</a>', url, counts["pending"], counts["failed"], counts["dead"]
        )

    # --- OAuth: Connect / Reconnect / Disconnect --------------------------------------------------------------------
    def get_urls(self):
        extra = [
            path(
                "<path:object_id>/oauth/connect/",
                self.admin_site.admin_view(self.oauth_connect_view),
                name="integrations_integration_oauth_connect",
            ),
            path(
                "<path:object_id>/oauth/disconnect/",
                self.admin_site.admin_view(self.oauth_disconnect_view),
                name="integrations_integration_oauth_disconnect",
            ),
        ]
        return extra + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        integration = Integration.objects.filter(pk=object_id).first() if object_id else None
        extra_context = dict(extra_context or {})
        if integration is not None:
            # Lines the apps built on integrations add (`extensions.admin_summaries`): the webhook URL and secret.
            summaries = (fn(integration=integration, request=request) for fn in extensions.admin_summaries)
            extra_context["related_summaries"] = [line for line in summaries if line]
        if integration is not None and _uses_oauth(integration):
            extra_context["oauth_provider"] = True
            extra_context["oauth_connected"] = any(
                integration.get_credentials().get(k) for k in ("access_token", "refresh_token")
            )
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def _oauth_target(self, request, object_id) -> Integration:
        integration = get_object_or_404(Integration, pk=object_id)
        if not self.has_change_permission(request, integration):
            raise PermissionDenied
        return integration

    def _change_url(self, integration: Integration) -> str:
        return reverse("admin:integrations_integration_change", args=[integration.pk])

    def _confirm(self, request, integration: Integration, *, title: str, text: str, button: str, force: bool = False):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": integration,
            "title": title,
            "text": text,
            "button": button,
            "offer_force": force,
        }
        return TemplateResponse(request, "admin/integrations/integration/oauth_confirm.html", context)

    def oauth_connect_view(self, request, object_id):
        """GET: confirm; POST: start the connect flow and send the browser to the provider."""
        integration = self._oauth_target(request, object_id)
        provider = integration.provider_impl
        if request.method != "POST":
            return self._confirm(
                request,
                integration,
                title=f"Connect {integration.name} to {provider.name}",
                text=(
                    f"You will be sent to {provider.name} to grant access, then back here. Until you do, the "
                    "integration keeps its current connection."
                ),
                button=f"Continue to {provider.name}",
            )
        try:
            started = oauth.oauth_start(integration=integration, actor=Actor.for_user(request.user))
        except JeweliaError as exc:
            self.message_user(request, f"Cannot connect: {exc.message} {exc.details or ''}".strip(), messages.ERROR)
            return HttpResponseRedirect(self._change_url(integration))
        return HttpResponseRedirect(started.authorize_url)

    def oauth_disconnect_view(self, request, object_id):
        """GET: confirm; POST: revoke the grant at the provider and forget the tokens."""
        integration = self._oauth_target(request, object_id)
        provider = integration.provider_impl
        if request.method != "POST":
            return self._confirm(
                request,
                integration,
                title=f"Disconnect {integration.name}",
                text=(
                    f"The access granted to Jewelia is revoked at {provider.name} and the tokens are forgotten. "
                    "Syncs and pushes stop until you connect again."
                ),
                button="Disconnect",
                force=True,
            )
        try:
            oauth.integration_disconnect(integration=integration, force=bool(request.POST.get("force")))
        except JeweliaError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, f"Disconnected from {provider.name}.", messages.SUCCESS)
        return HttpResponseRedirect(self._change_url(integration))

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


def _uses_oauth(integration: Integration) -> bool:
    try:
        return integration.provider_impl.auth_kind == AuthKind.OAUTH2
    except (KeyError, LookupError):
        return False


@admin.register(PushRule)
class PushRuleAdmin(admin.ModelAdmin):
    """Per integration: which local events push to which provider resources, with provider options. Saving
    validates the rule against the provider's push capabilities (`PushRule.clean`)."""

    list_display = ["integration", "event", "resource", "channels", "enabled", "updated_at"]
    list_filter = ["event", "enabled", "integration"]
    list_select_related = ["integration"]
    fields = ["integration", "event", "resource", "channels", "options", "enabled"]


@admin.register(OutboxEntry)
class OutboxEntryAdmin(admin.ModelAdmin):
    """Pushes queued for integrations: pending, sent (with the external id), failed or dead with the reason."""

    list_display = [
        "id",
        "integration",
        "event",
        "resource",
        "local_object",
        "operation",
        "status",
        "attempts",
        "next_attempt_at",
        "short_error",
        "external_id",
        "created_at",
    ]
    list_filter = ["status", "event", "resource", "integration"]
    search_fields = ["external_id", "last_error", "idempotency_key"]
    list_select_related = ["integration", "content_type"]
    actions = ["retry"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in OutboxEntry._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Local object")
    def local_object(self, obj: OutboxEntry) -> str:
        return f"{obj.content_type.model} {obj.object_id}"

    @admin.display(description="Error")
    def short_error(self, obj: OutboxEntry) -> str:
        return obj.last_error[:120]

    @admin.action(description="Retry selected entries")
    def retry(self, request, queryset):
        retried = 0
        for entry in queryset:
            try:
                outbox_services.outbox_entry_retry(entry=entry)
                retried += 1
            except JeweliaError as exc:
                self.message_user(request, f"Entry {entry.pk}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Retrying {retried} entries.", messages.SUCCESS)
