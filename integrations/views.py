"""Integrations API: thin views (input serializer -> service/selector -> output serializer).

Scopes (apikeys/permissions.py): reads need `integrations:read`, changes `integrations:write`, starting syncs
and retries `integrations:sync`.
"""

from __future__ import annotations

import django_filters
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from integrations import oauth, selectors, services
from integrations.health import integration_health_compute, integration_health_refresh
from integrations.models import (
    HealthStatus,
    Integration,
    IntegrationStatus,
    OutboxEntry,
    OutboxStatus,
    SyncRun,
    SyncRunStatus,
    SyncTrigger,
)
from integrations.outbox import services as outbox_services
from integrations.outbox.rules import push_targets
from integrations.outbox.selectors import outbox_list
from integrations.serializers import (
    DisconnectSerializer,
    FieldMappingSetOutputSerializer,
    FieldMappingSetSerializer,
    HealthSerializer,
    IdentityMappingSerializer,
    IntegrationInputSerializer,
    IntegrationOutputSerializer,
    OAuthStartOutputSerializer,
    OutboxEntrySerializer,
    ProviderSerializer,
    PushRuleSetOutputSerializer,
    PushRuleSetSerializer,
    RecordFailureSerializer,
    RetryFailuresSerializer,
    SyncAllSerializer,
    SyncRunSerializer,
    SyncStartSerializer,
)
from integrations.sync.mapping import TRANSFORM_OUTPUT, mappable_fields
from jewelia.core.actors import Actor
from jewelia.core.exceptions import NotFound

UUID_REGEX = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


class ProviderViewSet(viewsets.ViewSet):
    """Every registered provider with its category, capabilities, config schema and auth kind."""

    scope_resource = "integrations"
    lookup_field = "key"

    @extend_schema(responses=ProviderSerializer(many=True))
    def list(self, request):
        return Response(ProviderSerializer(selectors.provider_list(), many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH)], responses=ProviderSerializer
    )
    def retrieve(self, request, key=None):
        from integrations.providers import registry

        try:
            provider = registry.get_provider(key)
        except (KeyError, LookupError):
            raise NotFound(f"No provider '{key}'.") from None
        return Response(ProviderSerializer(selectors.provider_describe(provider=provider)).data)


class IntegrationFilter(django_filters.FilterSet):
    provider = django_filters.CharFilter()
    category = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=IntegrationStatus.choices)
    health = django_filters.ChoiceFilter(field_name="health_status", choices=HealthStatus.choices)
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", help_text="Part of the name.")

    class Meta:
        model = Integration
        fields = ["provider", "category", "status", "health", "search"]


class SyncRunFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SyncRunStatus.choices)
    trigger = django_filters.ChoiceFilter(choices=SyncTrigger.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = SyncRun
        fields = ["status", "trigger", "created_after", "created_before"]


RESOURCE_PARAM = OpenApiParameter("resource", OpenApiTypes.STR, description="Only this resource.")


@extend_schema_view(
    list=extend_schema(responses=IntegrationOutputSerializer(many=True)),
    retrieve=extend_schema(responses=IntegrationOutputSerializer),
    create=extend_schema(request=IntegrationInputSerializer, responses={201: IntegrationOutputSerializer}),
    update=extend_schema(request=IntegrationInputSerializer, responses=IntegrationOutputSerializer),
    partial_update=extend_schema(request=IntegrationInputSerializer, responses=IntegrationOutputSerializer),
    destroy=extend_schema(responses={204: None}),
)
class IntegrationViewSet(viewsets.GenericViewSet):
    scope_resource = "integrations"
    required_scopes = {
        "sync": "integrations:sync",
        "sync_all": "integrations:sync",
        "sync_health": "integrations:read",
        "retry_failures": "integrations:sync",
        "mappings_replace": "integrations:write",
        "oauth_start": "integrations:write",
        "disconnect": "integrations:write",
        "outbox": "integrations:read",
        "outbox_retry": "integrations:sync",
        "push_rules": "integrations:read",
        "push_rules_replace": "integrations:write",
    }
    serializer_class = IntegrationOutputSerializer
    filterset_class = IntegrationFilter
    lookup_value_regex = UUID_REGEX

    def get_queryset(self):
        return selectors.integration_list()

    def get_object(self) -> Integration:
        return get_object_or_404(Integration, pk=self.kwargs["pk"])

    def _actor(self) -> Actor:
        return Actor.from_request(self.request)

    # --- CRUD -------------------------------------------------------------------------------------------------------
    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(IntegrationOutputSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(IntegrationOutputSerializer(self.get_object()).data)

    def create(self, request):
        data = _valid(IntegrationInputSerializer(data=request.data))
        integration = services.integration_create(actor=self._actor(), **data)
        return Response(IntegrationOutputSerializer(integration).data, status=status.HTTP_201_CREATED)

    def update(self, request, pk=None, partial=False):
        integration = self.get_object()
        data = _valid(IntegrationInputSerializer(data=request.data, partial=partial))
        integration = services.integration_update(integration=integration, data=data)
        return Response(IntegrationOutputSerializer(integration).data)

    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk, partial=True)

    def destroy(self, request, pk=None):
        services.integration_delete(integration=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- sync ---------------------------------------------------------------------------------------------------------
    @extend_schema(
        request=SyncStartSerializer,
        responses={202: SyncRunSerializer, 200: SyncRunSerializer},
        description="Start a sync. 202 with the new run; 200 with the run already queued or running.",
    )
    @action(detail=True, methods=["post"], url_path="sync")
    def sync(self, request, pk=None):
        data = _valid(SyncStartSerializer(data=request.data))
        run, created = services.sync_start(
            integration=self.get_object(),
            trigger=SyncTrigger.API,
            actor=self._actor(),
            resources=data["resources"],
            full=data["full"],
        )
        run.refresh_from_db()
        return Response(SyncRunSerializer(run).data, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)

    @extend_schema(
        parameters=[OpenApiParameter("check", OpenApiTypes.STR, enum=["live"], description="live: call the provider")],
        responses=HealthSerializer,
        description="The integration's health; `?check=live` adds a cheap authenticated call to the provider.",
    )
    @sync.mapping.get
    def sync_health(self, request, pk=None):
        integration = self.get_object()
        if request.query_params.get("check") == "live":
            report = integration_health_refresh(integration=integration, live=True)
            checked_at = integration.health_checked_at
        else:
            report = integration_health_compute(integration=integration)
            checked_at = integration.health_checked_at
        return Response(
            HealthSerializer(
                {"status": report.status, "reason": report.reason, "checked_at": checked_at, "details": report.details}
            ).data
        )

    @extend_schema(request=SyncAllSerializer, responses={202: SyncRunSerializer(many=True)})
    @action(detail=False, methods=["post"], url_path="sync/all")
    def sync_all(self, request):
        data = _valid(SyncAllSerializer(data=request.data))
        runs = services.sync_start_all(actor=self._actor(), full=data["full"])
        refreshed = SyncRun.objects.filter(pk__in=[run.pk for run in runs]).order_by("pk")
        return Response(SyncRunSerializer(refreshed, many=True).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=SyncRunStatus.values),
            OpenApiParameter("trigger", OpenApiTypes.STR, enum=SyncTrigger.values),
            OpenApiParameter("created_after", OpenApiTypes.DATETIME),
            OpenApiParameter("created_before", OpenApiTypes.DATETIME),
        ],
        responses=SyncRunSerializer(many=True),
        filters=False,
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def runs(self, request, pk=None):
        runs = SyncRunFilter(request.query_params, queryset=selectors.run_list(integration=self.get_object()))
        if not runs.is_valid():
            from rest_framework.exceptions import ValidationError

            raise ValidationError(runs.errors)
        page = self.paginate_queryset(runs.qs)
        return self.get_paginated_response(SyncRunSerializer(page, many=True).data)

    # --- records -----------------------------------------------------------------------------------------------------
    @extend_schema(parameters=[RESOURCE_PARAM], responses=IdentityMappingSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], filterset_class=None)
    def records(self, request, pk=None):
        """The identity map: which local object each external record is, with its hash and source time."""
        mappings = selectors.identity_list(
            integration=self.get_object(), resource=request.query_params.get("resource") or None
        )
        page = self.paginate_queryset(mappings)
        return self.get_paginated_response(IdentityMappingSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            RESOURCE_PARAM,
            OpenApiParameter("state", OpenApiTypes.STR, enum=["open", "resolved", "all"], description="Default open."),
        ],
        responses=RecordFailureSerializer(many=True),
        filters=False,
    )
    @action(detail=True, methods=["get"], url_path="records/failures", filterset_class=None)
    def failures(self, request, pk=None):
        """Records that failed to transform or write, with the error and a payload excerpt."""
        failures = selectors.failure_list(
            integration=self.get_object(),
            resource=request.query_params.get("resource") or None,
            state=request.query_params.get("state", "open"),
        )
        page = self.paginate_queryset(failures)
        return self.get_paginated_response(RecordFailureSerializer(page, many=True).data)

    @extend_schema(request=RetryFailuresSerializer, responses={202: SyncRunSerializer, 200: SyncRunSerializer})
    @action(detail=True, methods=["post"], url_path="records/failures/retry")
    def retry_failures(self, request, pk=None):
        """Retry open record failures from their stored payloads (no resync), as a run of their own."""
        data = _valid(RetryFailuresSerializer(data=request.data))
        run, created = services.record_failures_retry(
            integration=self.get_object(), trigger=SyncTrigger.API, actor=self._actor(), failure_ids=data["ids"]
        )
        run.refresh_from_db()
        return Response(SyncRunSerializer(run).data, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)

    # --- field mappings ----------------------------------------------------------------------------------------------
    def _mappings_response(self, integration: Integration) -> Response:
        provider = integration.provider_impl
        return Response(
            FieldMappingSetOutputSerializer(
                {
                    "mappings": integration.field_mappings.order_by("resource", "local_field"),
                    "mappable_fields": {r.name: mappable_fields(r.kind) for r in provider.resources},
                    "transforms": list(TRANSFORM_OUTPUT),
                }
            ).data
        )

    @extend_schema(responses=FieldMappingSetOutputSerializer)
    @action(detail=True, methods=["get"], filterset_class=None)
    def mappings(self, request, pk=None):
        """Configured field mappings, plus which fields each resource lets a mapping set."""
        return self._mappings_response(self.get_object())

    @extend_schema(request=FieldMappingSetSerializer, responses=FieldMappingSetOutputSerializer)
    @mappings.mapping.put
    def mappings_replace(self, request, pk=None):
        """Replace all field mappings at once; every item is validated before anything changes."""
        integration = self.get_object()
        data = _valid(FieldMappingSetSerializer(data=request.data))
        services.field_mappings_replace(integration=integration, mappings=data["mappings"])
        return self._mappings_response(integration)

    # --- OAuth --------------------------------------------------------------------------------------------------------
    @extend_schema(
        request=None,
        responses=OAuthStartOutputSerializer,
        description=(
            "Start connecting (or reconnecting) an OAuth integration: send the user's browser to `authorize_url`. "
            "The provider sends it back to the shared callback, which stores the tokens, activates the "
            "integration and redirects to its admin page. The state is single-use and expires at `expires_at`."
        ),
    )
    @action(detail=True, methods=["post"], url_path="oauth/start")
    def oauth_start(self, request, pk=None):
        started = oauth.oauth_start(integration=self.get_object(), actor=self._actor())
        return Response(
            OAuthStartOutputSerializer(
                {
                    "authorize_url": started.authorize_url,
                    "state": started.state,
                    "expires_at": started.expires_at,
                    "redirect_uri": oauth.oauth_callback_url(),
                }
            ).data
        )

    @extend_schema(
        request=DisconnectSerializer,
        responses=IntegrationOutputSerializer,
        description="Revoke the OAuth grant at the provider (where it has a revoke endpoint) and forget the tokens.",
    )
    @action(detail=True, methods=["post"])
    def disconnect(self, request, pk=None):
        data = _valid(DisconnectSerializer(data=request.data))
        integration = oauth.integration_disconnect(integration=self.get_object(), force=data["force"])
        return Response(IntegrationOutputSerializer(integration).data)

    # --- push ---------------------------------------------------------------------------------------------------------
    def _push_rules_response(self, integration: Integration) -> Response:
        return Response(
            PushRuleSetOutputSerializer(
                {
                    "rules": integration.push_rules.order_by("event", "resource"),
                    "targets": push_targets(integration.provider_impl),
                }
            ).data
        )

    @extend_schema(responses=PushRuleSetOutputSerializer)
    @action(detail=True, methods=["get"], url_path="push-rules", filterset_class=None)
    def push_rules(self, request, pk=None):
        """Which local events push to which provider resources, plus what the provider can push per event."""
        return self._push_rules_response(self.get_object())

    @extend_schema(request=PushRuleSetSerializer, responses=PushRuleSetOutputSerializer)
    @push_rules.mapping.put
    def push_rules_replace(self, request, pk=None):
        """Replace all push rules at once; every rule is validated against the provider before anything changes."""
        integration = self.get_object()
        data = _valid(PushRuleSetSerializer(data=request.data))
        outbox_services.push_rules_replace(integration=integration, rules=data["rules"])
        return self._push_rules_response(integration)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=OutboxStatus.values),
            RESOURCE_PARAM,
        ],
        responses=OutboxEntrySerializer(many=True),
        filters=False,
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def outbox(self, request, pk=None):
        """Local changes queued for this integration: pending, sent (with the external id), failed or dead (with
        the reason), newest first."""
        entries = outbox_list(
            integration=self.get_object(),
            status=request.query_params.get("status") or None,
            resource=request.query_params.get("resource") or None,
        )
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(OutboxEntrySerializer(page, many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("entry_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        request=None,
        responses={202: OutboxEntrySerializer},
    )
    @action(detail=True, methods=["post"], url_path=r"outbox/(?P<entry_id>[0-9]+)/retry")
    def outbox_retry(self, request, pk=None, entry_id=None):
        """Send a failed or dead entry again now (same idempotency key: nothing is created twice)."""
        entry = get_object_or_404(OutboxEntry, pk=entry_id, integration=self.get_object())
        entry = outbox_services.outbox_entry_retry(entry=entry)
        return Response(OutboxEntrySerializer(entry).data, status=status.HTTP_202_ACCEPTED)


@require_GET
def oauth_callback(request):
    """The one OAuth redirect URI for every provider: finish the attempt the `state` names, then send the browser
    to the integration's admin page (or the integrations list when the state is unusable) with a message."""
    result = oauth.oauth_callback_complete(params=request.GET.dict(), user=request.user)
    messages.add_message(request, messages.SUCCESS if result.ok else messages.ERROR, result.message)
    if result.integration is not None:
        return redirect(reverse("admin:integrations_integration_change", args=[result.integration.pk]))
    return redirect(reverse("admin:integrations_integration_changelist"))


# A browser endpoint authenticated by its signed, single-use state (and the session that started it), not by scopes.
oauth_callback.public_endpoint = True  # type: ignore[attr-defined]


def _valid(serializer) -> dict:
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
