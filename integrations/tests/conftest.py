"""Fixtures for the integrations app: a fake provider registered for the test, integrations, eager on_commit."""

from __future__ import annotations

import pytest

from integrations.sandbox.testing import (  # noqa: F401 (fixtures for every integrations test)
    make_qb_sandbox,
    make_shopify_sandbox,
    make_stripe_sandbox,
    qb_sandbox,
    shopify_sandbox,
)
from integrations.tests.fakes import FakeProvider, FakeStore
from jewelia.core.actors import Actor


def register_provider(monkeypatch, provider: type) -> None:
    """Test-only: make `provider` resolvable through the registry's public functions for one test."""
    from integrations.providers import registry

    original_get, original_all, original_choices = (
        registry.get_provider,
        registry.all_providers,
        registry.provider_choices,
    )

    instance = provider()

    def get_provider(key: str):
        return instance if key == provider.key else original_get(key)

    def all_providers():
        return [*[p for p in original_all() if p.key != provider.key], instance]

    def provider_choices():
        return [*[c for c in original_choices() if c[0] != provider.key], (provider.key, provider.name)]

    monkeypatch.setattr(registry, "get_provider", get_provider)
    monkeypatch.setattr(registry, "all_providers", all_providers)
    monkeypatch.setattr(registry, "provider_choices", provider_choices)


@pytest.fixture
def fake_store(monkeypatch) -> FakeStore:
    store = FakeStore()
    monkeypatch.setattr(FakeProvider, "store", store)
    register_provider(monkeypatch, FakeProvider)
    return store


@pytest.fixture
def actor() -> Actor:
    return Actor("user", "1", "staff")


@pytest.fixture
def make_integration(db, fake_store, actor):
    from integrations.services import integration_create

    def make(**overrides):
        fields = {
            "name": "Fake store",
            "provider": "fakeshop",
            "config": {"shop": "demo"},
            "credentials": {"access_token": "tok-secret-123"},
            "status": "active",
        }
        fields.update(overrides)
        return integration_create(actor=actor, **fields)

    return make


@pytest.fixture
def integration(make_integration):
    return make_integration()


@pytest.fixture
def run_sync(django_capture_on_commit_callbacks):
    """Start a sync and run it to the end in this process (eager Celery, on_commit callbacks executed)."""
    from integrations.services import sync_start

    def run(integration, **kwargs):
        kwargs.setdefault("trigger", "manual")
        with django_capture_on_commit_callbacks(execute=True):
            created_run, _ = sync_start(integration=integration, **kwargs)
        created_run.refresh_from_db()
        integration.refresh_from_db()
        return created_run

    return run
