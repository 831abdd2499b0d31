"""`seed_demo`'s webhook events: delivered through the receiver with the sandbox's signatures, once."""

from __future__ import annotations

import io

import pytest
from django.core.management.color import no_style

from integrations import demo as integrations_demo
from orders.models import Customer, Order, Payment
from webhooks import demo
from webhooks.models import WebhookEvent
from webhooks.services import webhook_event_process, webhook_event_replay

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_integrations(settings):
    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]
    integrations_demo.seed(stdout=io.StringIO(), style=no_style())


def test_demo_delivers_four_signed_events_and_a_rerun_adds_nothing(demo_integrations):
    out = io.StringIO()
    demo.seed(stdout=out, style=no_style())
    demo.seed(stdout=io.StringIO(), style=no_style())

    events = WebhookEvent.objects.order_by("id")
    assert [(e.integration.provider, e.event_type) for e in events] == [
        ("shopify", "orders/create"),
        ("shopify", "customers/create"),
        ("shopify", "inventory_levels/update"),
        ("stripe", "payment_intent.succeeded"),
    ]
    assert {(e.status, e.signature_valid, e.manual) for e in events} == {("pending", True, False)}
    assert out.getvalue().count("Delivered webhook event") == 4


def test_demo_order_customer_and_payment_events_process_into_the_orders_domain(demo_integrations):
    demo.seed(stdout=io.StringIO(), style=no_style())

    for stored in WebhookEvent.objects.exclude(event_type="inventory_levels/update"):
        assert webhook_event_process(event_id=stored.pk).status == "processed"

    assert Order.objects.filter(external_reference="#9001").count() == 1
    assert Customer.objects.filter(email="grace.hopper@mail.example.com").count() == 1
    assert Payment.objects.filter(provider="stripe", external_id="pi_3Q1aBcDemoJewelia0000001").count() == 1


def test_demo_inventory_event_reads_the_item_from_the_running_sandbox(settings):
    """As `scripts/run.sh` has it: the sandbox server up (Shopify under /shopify), then the seed. The event names
    an inventory item; the handler reads its SKU from the sandbox (`inventory_items/{id}.json`). Before the first
    product sync the SKU is unknown locally and the event fails for a later retry; after it, it applies."""
    from django.core.management import call_command

    from integrations.sandbox.server import SandboxServer
    from integrations.sandbox.shopify import ShopifySandbox
    from orders.models import Product

    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]
    sandbox = ShopifySandbox()
    server = SandboxServer({"/shopify": sandbox}).start()
    settings.SANDBOX_BASE_URL = server.url
    try:
        integrations_demo.seed(stdout=io.StringIO(), style=no_style())
        demo.seed(stdout=io.StringIO(), style=no_style())
        stored = WebhookEvent.objects.get(event_type="inventory_levels/update")
        early = webhook_event_process(event_id=stored.pk)
        call_command("sync_integration", str(stored.integration_id), "--resource", "products", stdout=io.StringIO())
        webhook_event_replay(event=stored)  # staff replay it (or the retry schedule comes round)
        processed = webhook_event_process(event_id=stored.pk)
    finally:
        server.stop()

    (sku,) = [
        i["sku"] for i in sandbox.inventory_items() if i["inventory_item_id"] == stored.payload["inventory_item_id"]
    ]
    assert (early.status, early.last_error) == (
        "failed",
        f"A record was refused: unknown SKU '{sku}': sync products first",
    )
    assert processed.status == "processed", processed.last_error
    assert Product.objects.get(sku=sku).stock_movements.exists()


def test_seed_demo_with_sync_syncs_the_demo_integrations_first_so_the_inventory_event_applies(settings):
    """`scripts/run.sh` runs `seed_demo --sync` with the sandbox up: the demo integrations are synced before the
    demo webhooks are delivered, so the inventory event finds its product."""
    from django.core.management import call_command

    from integrations.models import Integration
    from integrations.sandbox.quickbooks import QuickBooksSandbox
    from integrations.sandbox.server import SandboxServer
    from integrations.sandbox.shopify import ShopifySandbox
    from integrations.sandbox.stripe import StripeSandbox

    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]
    apps = {"/shopify": ShopifySandbox(), "/stripe": StripeSandbox(), "/quickbooks": QuickBooksSandbox()}
    server = SandboxServer(apps).start()
    settings.SANDBOX_BASE_URL = server.url
    out = io.StringIO()
    try:
        call_command("seed_demo", "--sync", "--no-staff", stdout=out)
        stored = WebhookEvent.objects.get(event_type="inventory_levels/update")
        processed = webhook_event_process(event_id=stored.pk)
    finally:
        server.stop()

    assert processed.status == "processed", processed.last_error
    demos = Integration.objects.order_by("name")
    assert [(i.name, i.last_sync_at is not None) for i in demos] == [
        ("Demo Shopify store (sandbox)", True),
        ("Demo Stripe account (sandbox)", True),
        ("QuickBooks Online", True),
    ]
    assert out.getvalue().count("First sync of") == 3
