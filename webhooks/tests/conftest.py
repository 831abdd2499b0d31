"""Fixtures for the webhooks app: a fake provider with webhooks, integrations with a secret, a delivery poster."""

from __future__ import annotations

import pytest

from integrations.tests.conftest import register_provider
from jewelia.core.actors import Actor
from webhooks.tests.fakes import FakeHooksProvider, delivery

SECRET = "fk_secret_current_0001"


@pytest.fixture(autouse=True)
def _no_hot_path_caches(settings):
    """Tests change integrations between deliveries and drain right after delivering: start every test with
    the receiver's per-process caches off (the tests of those caches switch them on)."""
    from webhooks.services import app_receiving, processing, receiving

    settings.WEBHOOKS_TARGET_CACHE_SECONDS = 0
    settings.WEBHOOKS_NUDGE_DEBOUNCE_SECONDS = 0
    receiving._TARGETS.clear()
    app_receiving._ACCOUNT_TARGETS.clear()
    processing._drain_due_since = float("-inf")


@pytest.fixture
def actor() -> Actor:
    return Actor("user", "1", "staff")


@pytest.fixture
def fake_provider(monkeypatch):
    register_provider(monkeypatch, FakeHooksProvider)
    return FakeHooksProvider


@pytest.fixture
def make_integration(db, fake_provider, actor):
    """An active integration of the fake provider with `SECRET` as its webhook secret (unless secret=None)."""
    from integrations.services import integration_create
    from webhooks.services import webhook_secret_set

    def make(*, secret: str | None = SECRET, **overrides):
        fields = {
            "name": "Fake hooks store",
            "provider": "fakehooks",
            "credentials": {"access_token": "tok-123"},
            "status": "active",
        }
        fields.update(overrides)
        integration = integration_create(actor=actor, **fields)
        if secret is not None:
            webhook_secret_set(integration=integration, secret=secret)
        integration.refresh_from_db()
        return integration

    return make


@pytest.fixture
def integration(make_integration):
    return make_integration()


def receiver_url(integration) -> str:
    return f"/api/webhooks/{integration.pk}/"


@pytest.fixture
def post_delivery(client):
    """POST raw bytes with the given headers to an integration's receiver, as a provider would."""

    def post(integration, body: bytes, headers: dict[str, str]):
        headers = dict(headers)
        content_type = headers.pop("Content-Type", "application/json")
        return client.generic("POST", receiver_url(integration), data=body, content_type=content_type, headers=headers)

    return post


@pytest.fixture
def deliver(post_delivery):
    """Sign `payload` with `secret` (default: the integration's) and post it."""

    def send(integration, payload, *, secret: str = SECRET):
        body, headers = delivery(payload, secret)
        return post_delivery(integration, body, headers)

    return send
