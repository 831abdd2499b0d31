"""Routes of the webhooks app (included at /api/).

- `webhooks/<integration uuid>/`: the public receiver providers deliver to (exact path, trailing slash);
- `webhooks/providers/<provider key>/`: the public receiver of providers with one webhook URL per developer app
  (`Provider.app_webhooks`, QuickBooks), routing each account's part of a delivery to its integration;
- `integrations/<uuid>/webhooks[/<event id>][/replay]`: the events API, `.../webhooks/setup` for what to enter in
  the provider's dashboard, and `.../webhooks/secret` to set the signing secret (trailing slash optional, like
  the routers of the other apps).
"""

from django.urls import path, re_path

from webhooks.views import ProviderWebhookReceiveView, WebhookEventViewSet, WebhookReceiveView

UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
EVENTS = rf"^integrations/(?P<integration_id>{UUID})/webhooks"

urlpatterns = [
    path("webhooks/<uuid:integration_id>/", WebhookReceiveView.as_view(), name="webhook-receive"),
    path(
        "webhooks/providers/<slug:provider_key>/",
        ProviderWebhookReceiveView.as_view(),
        name="webhook-receive-provider",
    ),
    re_path(
        rf"{EVENTS}/?$",
        WebhookEventViewSet.as_view({"get": "list", "post": "create"}),
        name="webhook-event-list",
    ),
    re_path(
        rf"{EVENTS}/replay/?$",
        WebhookEventViewSet.as_view({"post": "replay_bulk"}),
        name="webhook-event-replay-bulk",
    ),
    re_path(
        rf"{EVENTS}/setup/?$",
        WebhookEventViewSet.as_view({"get": "setup"}),
        name="webhook-setup",
    ),
    re_path(
        rf"{EVENTS}/secret/?$",
        WebhookEventViewSet.as_view({"post": "secret"}),
        name="webhook-secret",
    ),
    re_path(
        rf"{EVENTS}/(?P<event_id>[0-9]+)/?$",
        WebhookEventViewSet.as_view({"get": "retrieve"}),
        name="webhook-event-detail",
    ),
    re_path(
        rf"{EVENTS}/(?P<event_id>[0-9]+)/replay/?$",
        WebhookEventViewSet.as_view({"post": "replay"}),
        name="webhook-event-replay",
    ),
]
