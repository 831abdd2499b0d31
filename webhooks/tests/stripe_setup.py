"""An active Stripe integration with a webhook signing secret: what the tests of the real Stripe verifier, the
worker end-to-end tests and `bench/webhooks_bench.py` deliver signed events to."""

from __future__ import annotations

from integrations.models import Integration
from integrations.services import integration_create
from jewelia.core.actors import Actor
from webhooks.services import webhook_secret_set


def stripe_integration_create(*, secret: str, name: str = "Stripe", actor: str = "tests") -> Integration:
    """Create the integration (a test-mode API key, no sync needed) and set `secret` as its webhook secret."""
    integration = integration_create(
        actor=Actor.system(actor),
        name=name,
        provider="stripe",
        config={},
        credentials={"api_key": "sk_test_51Jewelia"},
        status="active",
    )
    webhook_secret_set(integration=integration, secret=secret)
    return integration
