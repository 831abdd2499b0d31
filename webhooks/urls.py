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
EVENT = r"(?P<event_id>[0-9]+)"


def _events(suffix: str, actions: dict[str, str], name: str):
    """`integrations/<uuid>/webhooks<suffix>` with an optional trailing slash, bound to the viewset's `actions`."""
    return re_path(
        rf"^integrations/(?P<integration_id>{UUID})/webhooks{suffix}/?$",
        WebhookEventViewSet.as_view(actions),
        name=name,
    )


urlpatterns = [
    path("webhooks/<uuid:integration_id>/", WebhookReceiveView.as_view(), name="webhook-receive"),
    path(
        "webhooks/providers/<slug:provider_key>/",
        ProviderWebhookReceiveView.as_view(),
        name="webhook-receive-provider",
    ),
    _events("", {"get": "list", "post": "create"}, "webhook-event-list"),
    _events("/replay", {"post": "replay_bulk"}, "webhook-event-replay-bulk"),
    _events("/setup", {"get": "setup"}, "webhook-setup"),
    _events("/secret", {"post": "secret"}, "webhook-secret"),
    _events(f"/{EVENT}", {"get": "retrieve"}, "webhook-event-detail"),
    _events(f"/{EVENT}/replay", {"post": "replay"}, "webhook-event-replay"),
]
