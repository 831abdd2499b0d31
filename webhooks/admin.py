"""Admin for the webhook inbox: events with status, type and integration filters, the pretty-printed payload,
replay (one event from its page, or a selection / a whole filtered list from the changelist, always after a
confirmation page showing how many events will be replayed), and the dead letters on their own list.

Events are evidence: they are read-only here; every change goes through `webhooks.services`.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from integrations.models import Integration
from integrations.providers import registry
from integrations.providers.base import Capability
from jewelia.core.exceptions import Conflict
from webhooks.models import REPLAYABLE_STATUSES, DeadWebhookEvent, WebhookCounter, WebhookEvent, WebhookEventStatus
from webhooks.selectors import LIST_DEFERRED
from webhooks.services import webhook_event_replay, webhook_events_replay_bulk

_STATUS_COLOURS = {
    WebhookEventStatus.PROCESSED: "#2e7d32",
    WebhookEventStatus.IGNORED: "#757575",
    WebhookEventStatus.PENDING: "#1565c0",
    WebhookEventStatus.PROCESSING: "#1565c0",
    WebhookEventStatus.HELD: "#6a1b9a",
    WebhookEventStatus.FAILED: "#ef6c00",
    WebhookEventStatus.DEAD: "#c62828",
}


class EventTypeFilter(admin.SimpleListFilter):
    """The types the connected providers handle, from their handler tables: a DISTINCT over the inbox read every
    event (0.16 s at half a million). Other types (stored and ignored) are still filterable by URL."""

    title = "type"
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        types: set[str] = set()
        for key in Integration.objects.order_by().values_list("provider", flat=True).distinct():
            try:
                provider = registry.get_provider(key)
            except KeyError:
                continue
            if provider.has(Capability.WEBHOOKS):
                types.update(provider.webhook_handlers())
        return [(value, value) for value in sorted(types)] + [("", "(none: unparsable)")]

    def queryset(self, request, queryset):
        return queryset.filter(event_type=self.value()) if self.value() is not None else queryset


def _pretty(value) -> str:
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', value)


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "received_at",
        "integration",
        "event_type",
        "status_badge",
        "attempts",
        "next_attempt_at",
        "manual",
        "provider_event_id",
    ]
    # Kept cheap for an inbox of millions of events: received-at as a date list filter, not a date hierarchy (a
    # DISTINCT over every event's month), integrations listed as they are (not those found among the events),
    # newest first by id (the primary key's order, which is the order of receipt).
    list_filter = [
        "status",
        EventTypeFilter,
        ("integration", admin.RelatedFieldListFilter),
        "manual",
        ("received_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["integration"]
    search_fields = ["=provider_event_id", "=group_id"]
    ordering = ["-id"]
    actions = ["replay_events"]
    show_full_result_count = False  # a count over the whole inbox is the slowest part of a changelist
    fieldsets = [
        (None, {"fields": ["integration", "event_type", "provider_event_id", "group_id", "status_badge"]}),
        (
            "Processing",
            {"fields": ["attempts", "next_attempt_at", "claimed_at", "processed_at", "result", "last_error"]},
        ),
        (
            "Delivery",
            {
                "fields": [
                    "received_at",
                    "occurred_at",
                    "signature_valid",
                    "manual",
                    "created_by_label",
                    "replay_count",
                    "pretty_headers",
                ]
            },
        ),
        ("Payload", {"fields": ["pretty_payload", "raw_body_text"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        # The changelist never shows the heavy columns; the change page reads them.
        return queryset if request.resolver_match.url_name.endswith("_change") else queryset.defer(*LIST_DEFERRED)

    def get_readonly_fields(self, request, obj=None):
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    def has_add_permission(self, request):
        return False  # hand-made events come in through the API (POST .../webhooks), where their type is checked

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("webhooks.change_webhookevent")

    @admin.display(description="status", ordering="status")
    def status_badge(self, event: WebhookEvent) -> str:
        return format_html(
            '<strong style="color: {}">{}</strong>', _STATUS_COLOURS.get(event.status, "inherit"), event.status
        )

    @admin.display(description="payload")
    def pretty_payload(self, event: WebhookEvent) -> str:
        if event.payload is None:
            return "(not JSON: see the raw body)"
        return _pretty(json.dumps(event.payload, indent=2, sort_keys=True, ensure_ascii=False))

    @admin.display(description="headers")
    def pretty_headers(self, event: WebhookEvent) -> str:
        return _pretty(json.dumps(event.headers, indent=2, sort_keys=True))

    @admin.display(description="raw body")
    def raw_body_text(self, event: WebhookEvent) -> str:
        return _pretty(bytes(event.raw_body or b"").decode("utf-8", errors="replace"))

    # --- replay ---------------------------------------------------------------------------------------------------
    @admin.action(description="Replay selected events", permissions=["replay"])
    def replay_events(self, request: HttpRequest, queryset: QuerySet):
        """A confirmation page with the count first; the confirmed POST replays through the service. With
        "select all" the queryset is the whole filtered list, so this is also the bulk replay by filter."""
        would = webhook_events_replay_bulk(queryset=queryset, confirm=False)["would_replay"]
        if request.POST.get("confirm") == "yes":
            try:
                result = webhook_events_replay_bulk(
                    queryset=queryset, confirm=True, expected=int(request.POST.get("expected", "-1"))
                )
            except Conflict as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return None
            self.message_user(request, f"{result['replayed']} events queued for processing again.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Replay webhook events",
            "selected": queryset.count(),
            "would_replay": would,
            "replayable": ", ".join(REPLAYABLE_STATUSES),
            "selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/webhooks/replay_confirm.html", context)

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/replay/",
                self.admin_site.admin_view(self.replay_view),
                name=f"{opts.app_label}_{opts.model_name}_replay",
            ),
            *super().get_urls(),
        ]

    def replay_view(self, request: HttpRequest, object_id: str):
        """Replay one event from its page (GET: confirmation; POST: replay)."""
        if not self.has_replay_permission(request):
            raise PermissionDenied
        event = get_object_or_404(WebhookEvent.objects.defer(*LIST_DEFERRED), pk=object_id)
        change_url = reverse(
            f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_change", args=[event.pk]
        )
        if request.method == "POST":
            try:
                webhook_event_replay(event=event)
            except Conflict as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Event {event.pk} queued for processing again.", messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Replay webhook event",
            "event": event,
            "selected": 1,
            "would_replay": 1 if event.status in REPLAYABLE_STATUSES else 0,
            "replayable": ", ".join(REPLAYABLE_STATUSES),
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/webhooks/replay_confirm.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_replay": self.has_replay_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)


@admin.register(DeadWebhookEvent)
class DeadWebhookEventAdmin(WebhookEventAdmin):
    """The dead letters: events processing gave up on, waiting for someone to fix the cause and replay them."""

    list_filter = [EventTypeFilter, ("integration", admin.RelatedFieldListFilter), "manual"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=WebhookEventStatus.DEAD)


@admin.register(WebhookCounter)
class WebhookCounterAdmin(admin.ModelAdmin):
    list_display = ["day", "integration", "rejected_signatures", "duplicates"]
    list_filter = [("integration", admin.RelatedOnlyFieldListFilter)]
    date_hierarchy = "day"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
