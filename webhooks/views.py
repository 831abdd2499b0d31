"""The webhook receivers (public, verified by the provider's signature) and the webhook events API.

The receivers (per integration, and per provider app for providers with app-level webhooks) are plain Django
views, not DRF ones: they have no authentication, parsing or content negotiation to do, and every microsecond of
the hot path is per delivery (DESIGN.md rule 8). The API views are thin:
input serializer -> selector/service -> output serializer; scopes `webhooks:read` / `webhooks:write`.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from integrations.models import Integration
from integrations.providers.base import Provider
from jewelia.core.actors import Actor
from jewelia.core.exceptions import NotFound, error_response, payload_too_large_response
from webhooks import selectors, services
from webhooks.models import WebhookEvent
from webhooks.serializers import (
    BulkReplayInputSerializer,
    BulkReplayOutputSerializer,
    EventFilterSerializer,
    ManualEventInputSerializer,
    SecretInputSerializer,
    SecretOutputSerializer,
    WebhookEventDetailSerializer,
    WebhookEventSerializer,
    WebhookSetupSerializer,
)
from webhooks.services.app_receiving import AppReceipt
from webhooks.services.receiving import IntegrationGone, Outcome, Receipt


# --- the receivers ----------------------------------------------------------------------------------------------------
class _Refused(Exception):
    """A delivery answered before any service sees it (too large, wrong content type): carries the answer."""

    def __init__(self, response: JsonResponse):
        super().__init__(response.status_code)
        self.response = response


@method_decorator(csrf_exempt, name="dispatch")
class _DeliveryView(View):
    """What both receivers share, so they answer alike: public (the provider's signature is the only
    authentication), POST only, the size and content type checked before the body is read, and every refusal in
    the one error shape."""

    public_endpoint = True
    http_method_names = ["post"]

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except _Refused as refused:
            return refused.response

    def read_delivery(self, request: HttpRequest, provider: Provider) -> bytes:
        """The body, at most `WEBHOOKS_MAX_BODY_BYTES`: 413 from Content-Length before reading (and never more
        than the limit + 1 bytes read), 415 for a content type the provider does not send."""
        limit = settings.WEBHOOKS_MAX_BODY_BYTES
        if _declared_length(request) > limit:
            raise _Refused(payload_too_large_response(request=request, limit=limit, what="Webhook bodies"))
        allowed = provider.webhook_content_types
        if (request.content_type or "").lower() not in allowed:
            raise _Refused(
                error_response(
                    status=415,
                    code="unsupported_media_type",
                    message=f"Send the webhook as {' or '.join(allowed)}.",
                    details={"expected": list(allowed)},
                    request=request,
                )
            )
        body = request.read(limit + 1)  # a body without (or with a lying) Content-Length stops here too
        if len(body) > limit:
            raise _Refused(payload_too_large_response(request=request, limit=limit, what="Webhook bodies"))
        return body

    def refuse_unaccepted(self, request: HttpRequest, receipt: Receipt | AppReceipt, *, unparsable: str) -> None:
        """401 for a delivery whose signature could not be verified, 400 (with the message `unparsable`) for an
        authentic one that is not an event; nothing for an accepted one."""
        if receipt.outcome == Outcome.REJECTED:
            raise _Refused(
                error_response(
                    status=401,
                    code="invalid_signature",
                    message="The webhook signature could not be verified.",
                    request=request,
                )
            )
        if receipt.outcome == Outcome.UNPARSABLE:
            raise _Refused(
                error_response(
                    status=400,
                    code="invalid_payload",
                    message=unparsable,
                    details={"reason": receipt.reason},
                    request=request,
                )
            )

    def http_method_not_allowed(self, request, *args, **kwargs):
        return error_response(
            status=405,
            code="method_not_allowed",
            message="Webhooks are delivered with POST.",
            request=request,
            headers={"Allow": "POST"},
        )


class WebhookReceiveView(_DeliveryView):
    """`POST /api/webhooks/<integration uuid>/`: a provider's delivery.

    404 unknown integration; 413 body over `WEBHOOKS_MAX_BODY_BYTES` (refused from Content-Length before
    reading, and never more than the limit + 1 bytes read); 415 content type the provider does not send; 401
    signature not verifiable (nothing stored); 400 authentic but unparsable (stored as failed); 200 stored or
    duplicate.
    """

    def post(self, request: HttpRequest, integration_id) -> JsonResponse:
        target = services.webhook_target_get(integration_id=integration_id)
        if target is None:
            return _not_found(request)
        body = self.read_delivery(request, target.provider)
        try:
            receipt = services.delivery_accept(
                target=target, headers=request.headers, body=body, remote_addr=request.META.get("REMOTE_ADDR", "")
            )
        except IntegrationGone:
            return _not_found(request)
        self.refuse_unaccepted(
            request, receipt, unparsable="The delivery was stored, but its body cannot be read as an event."
        )
        if receipt.outcome == Outcome.DUPLICATE:
            return JsonResponse({"received": True, "duplicate": True})
        return JsonResponse({"received": True, "status": receipt.status})


class ProviderWebhookReceiveView(_DeliveryView):
    """`POST /api/webhooks/providers/<provider key>/`: a delivery to a provider's app-level URL (one per developer
    app, for every connected account: QuickBooks), verified with the app's secrets.

    The same 404/413/415/401 answers as the per-integration receiver (404: no provider with app-level webhooks has
    this key; 401 also when no app secret is configured); 400 authentic but unparsable (stored as failed for every
    integration connected through the app: whose it is cannot be told). Otherwise 200 with how many parts (one
    per account) were `stored` (of which `held`), `duplicate` or `unrouted` (an account no integration is
    connected to: not stored, since the provider would retry a non-2xx answer for days).
    """

    def post(self, request: HttpRequest, provider_key: str) -> JsonResponse:
        provider = services.app_webhook_provider_get(provider_key=provider_key)
        if provider is None:
            return _not_found(request)
        body = self.read_delivery(request, provider)
        receipt = services.app_delivery_accept(
            provider=provider, headers=request.headers, body=body, remote_addr=request.META.get("REMOTE_ADDR", "")
        )
        self.refuse_unaccepted(
            request,
            receipt,
            unparsable="The delivery was stored for the integrations connected through this app, but its body "
            "cannot be read as events.",
        )
        return JsonResponse(
            {
                "received": True,
                "stored": receipt.stored,
                "held": receipt.held,
                "duplicate": receipt.duplicate,
                "unrouted": receipt.unrouted,
            }
        )


def _not_found(request: HttpRequest) -> JsonResponse:
    return error_response(status=404, code="not_found", message="Unknown webhook endpoint.", request=request)


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


# --- the events API ---------------------------------------------------------------------------------------------------
INTEGRATION_PARAM = OpenApiParameter("integration_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
EVENT_PARAM = OpenApiParameter("event_id", OpenApiTypes.INT, OpenApiParameter.PATH)
FILTER_PARAMS = [
    OpenApiParameter("status", OpenApiTypes.STR, description="One or more statuses, comma-separated."),
    OpenApiParameter("type", OpenApiTypes.STR, description="Exact event type."),
    OpenApiParameter("received_after", OpenApiTypes.DATETIME, description="Received at or after."),
    OpenApiParameter("received_before", OpenApiTypes.DATETIME, description="Received before."),
    OpenApiParameter("manual", OpenApiTypes.BOOL, description="Only hand-made (true) or delivered (false) events."),
]


def _valid(serializer):
    serializer.is_valid(raise_exception=True)
    return serializer


class WebhookEventViewSet(viewsets.GenericViewSet):
    """An integration's webhook events: list and detail (`webhooks:read`), hand-made events and replays
    (`webhooks:write`). Paths are bound in `webhooks/urls.py`."""

    scope_resource = "webhooks"
    required_scopes = {"secret": "integrations:write"}  # a credential: set with the integration's own write scope
    serializer_class = WebhookEventSerializer
    filter_backends: list = []

    def get_queryset(self):
        return WebhookEvent.objects.none()  # model permissions for staff sessions; the views use selectors

    def _integration(self) -> Integration:
        return get_object_or_404(Integration, pk=self.kwargs["integration_id"])

    @extend_schema(parameters=[INTEGRATION_PARAM, *FILTER_PARAMS], responses=WebhookEventSerializer(many=True))
    def list(self, request, integration_id=None):
        """Events newest first, without payloads (see the detail)."""
        filters = _valid(EventFilterSerializer(data=request.query_params))
        events = selectors.webhook_events_query(integration=self._integration(), **filters.selector_kwargs())
        page = self.paginate_queryset(events)
        return self.get_paginated_response(WebhookEventSerializer(page, many=True).data)

    @extend_schema(parameters=[INTEGRATION_PARAM, EVENT_PARAM], responses=WebhookEventDetailSerializer)
    def retrieve(self, request, integration_id=None, event_id=None):
        event = selectors.webhook_event_get(integration=self._integration(), event_id=int(event_id))
        return Response(WebhookEventDetailSerializer(event).data)

    @extend_schema(
        parameters=[INTEGRATION_PARAM],
        request=ManualEventInputSerializer,
        responses={201: WebhookEventDetailSerializer},
        description="Create an event by hand (e.g. re-inject one from the provider's dashboard). It is marked "
        "manual and processed like a delivery. 409 when an event with the same provider id exists (replay it).",
    )
    def create(self, request, integration_id=None):
        data = _valid(ManualEventInputSerializer(data=request.data)).validated_data
        event = services.webhook_event_create_manual(
            integration=self._integration(),
            event_type=data["type"],
            payload=data["payload"],
            event_id=data.get("event_id") or "",
            occurred_at=data.get("occurred_at"),
            actor=Actor.from_request(request),
        )
        return Response(WebhookEventDetailSerializer(event).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="integrations_webhooks_replay_one",
        parameters=[INTEGRATION_PARAM, EVENT_PARAM],
        request=None,
        responses={202: WebhookEventDetailSerializer},
        description="Process a processed, ignored, failed or dead event again (409 for any other status).",
    )
    def replay(self, request, integration_id=None, event_id=None):
        event = selectors.webhook_event_get(integration=self._integration(), event_id=int(event_id))
        event = services.webhook_event_replay(event=event)
        return Response(WebhookEventDetailSerializer(event).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="integrations_webhooks_replay_bulk",
        parameters=[INTEGRATION_PARAM],
        request=BulkReplayInputSerializer,
        responses={200: BulkReplayOutputSerializer, 202: BulkReplayOutputSerializer},
        description="Replay every replayable event matching the filters (status defaults to failed,dead). "
        'Without `confirm` nothing changes: the answer is `{"would_replay": n}`. With `"confirm": true` (and '
        'optionally `"expected": n` from the dry run) the events are re-queued: 202 `{"replayed": n}`.',
    )
    def replay_bulk(self, request, integration_id=None):
        data = _valid(BulkReplayInputSerializer(data=request.data))
        queryset = selectors.webhook_events_query(integration=self._integration(), **data.selector_kwargs())
        result = services.webhook_events_replay_bulk(
            queryset=queryset, confirm=data.validated_data["confirm"], expected=data.validated_data.get("expected")
        )
        code = status.HTTP_202_ACCEPTED if "replayed" in result else status.HTTP_200_OK
        return Response(BulkReplayOutputSerializer(result).data, status=code)

    @extend_schema(
        parameters=[INTEGRATION_PARAM],
        responses={200: WebhookSetupSerializer},
        description="What to enter in the provider's dashboard: the receiver URL, the event types to subscribe "
        "to, and whether a signing secret is set. 404 when the provider sends no webhooks.",
    )
    def setup(self, request, integration_id=None):
        integration = self._integration()
        endpoint = selectors.webhook_endpoint_get(integration=integration)
        if endpoint is None:
            raise NotFound("This integration's provider does not send webhooks.")
        status_now = selectors.webhook_secret_status(integration=integration)
        data = {
            "url": request.build_absolute_uri(endpoint.path),
            "app_level": endpoint.app_level,
            "secret_setting": endpoint.secret_setting,
            "content_types": list(endpoint.content_types),
            "event_types": list(endpoint.event_types),
            "secret_configured": selectors.webhook_secret_configured(integration=integration),
            "previous_secret_valid_until": status_now["previous_secret_valid_until"],
        }
        return Response(WebhookSetupSerializer(data).data)

    @extend_schema(
        parameters=[INTEGRATION_PARAM],
        request=SecretInputSerializer,
        responses={200: SecretOutputSerializer},
        description="Set the webhook signing secret (stored encrypted with the credentials; never returned). The "
        "secret it replaces keeps verifying deliveries for WEBHOOKS_SECRET_ROTATION_HOURS (Shopify signs with the "
        "old client secret for up to an hour after a rotation). Needs `integrations:write`.",
    )
    def secret(self, request, integration_id=None):
        integration = self._integration()
        data = _valid(SecretInputSerializer(data=request.data)).validated_data
        services.webhook_secret_set(integration=integration, secret=data["secret"])
        return Response(SecretOutputSerializer(selectors.webhook_secret_status(integration=integration)).data)
