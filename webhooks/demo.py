"""Demo webhook events for `seed_demo`: an order created, a customer created and an inventory level updated
from the demo Shopify store, and a payment succeeded from a demo Stripe account, each signed with the
sandbox's secrets by `integrations.sandbox.signing` and delivered through the real receiver URL.

Deliveries go through Django's full request stack in-process (`django.test.Client` against
`/api/webhooks/<integration uuid>/`: middleware, routing, the receiver view, verification, storage), since
`seed_demo` runs before any server is up; over a socket the bytes and code path would be the same. After the
seed's transaction commits they are processed like any delivery (inline without Redis; by a worker with it).
The inventory event is completed from the Shopify sandbox's Admin API while processing (`inventory_items/{id}`
for the SKU). `seed_demo --sync` (the README's run command) syncs the demo integrations before this seeder, so
the SKU is known; without a first product sync the event is `failed` and retried on schedule (or replay it from
the admin after a sync), the same as when the sandbox is down.

Idempotent: events carry fixed ids, and one already stored is not delivered again. The integrations get the
sandbox's webhook secrets only when they have none.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.test import Client
from django.urls import reverse

from integrations.models import Integration
from integrations.sandbox import signing
from orders.models import Order
from webhooks.models import WebhookEvent
from webhooks.selectors import webhook_secret_configured
from webhooks.services import webhook_secret_set


def seed(*, stdout, style) -> None:
    from integrations.demo import DEMO_NAME as DEMO_SHOPIFY_NAME
    from integrations.sandbox.shopify import DEMO_CLIENT_SECRET
    from integrations.sandbox.stripe import DEMO_WEBHOOK_SECRET

    shopify = Integration.objects.filter(name=DEMO_SHOPIFY_NAME, provider="shopify").first()
    stripe = Integration.objects.filter(provider="stripe").order_by("created_at").first()
    deliveries = []
    if shopify is not None:
        _ensure_secret(shopify, DEMO_CLIENT_SECRET)
        deliveries += [(shopify, *delivery) for delivery in _shopify_deliveries(DEMO_CLIENT_SECRET)]
    else:
        stdout.write(style.WARNING("No demo Shopify integration: its sample webhook events are skipped."))
    if stripe is not None:
        _ensure_secret(stripe, DEMO_WEBHOOK_SECRET)
        deliveries.append((stripe, *_stripe_payment(DEMO_WEBHOOK_SECRET)))
    else:
        stdout.write(style.WARNING("No demo Stripe integration: its sample webhook event is skipped."))

    client = Client(HTTP_HOST=_allowed_host())
    for integration, label, event_id, body, headers in deliveries:
        if WebhookEvent.objects.filter(integration=integration, provider_event_id=event_id).exists():
            stdout.write(f"Webhook event '{label}' already received; left unchanged.")
            continue
        headers = dict(headers)
        response = client.generic(
            "POST",
            reverse("webhook-receive", args=[integration.pk]),
            data=body,
            content_type=headers.pop("Content-Type"),
            headers=headers,
            secure=True,
        )
        if response.status_code == 200:
            stdout.write(style.SUCCESS(f"Delivered webhook event '{label}' to {integration.name}."))
        else:
            stdout.write(style.WARNING(f"Webhook event '{label}' was refused: {response.status_code}."))


def _allowed_host() -> str:
    hosts = [h for h in settings.ALLOWED_HOSTS if h and "*" not in h and not h.startswith(".")]
    return hosts[0] if hosts else "127.0.0.1"


def _ensure_secret(integration: Integration, secret: str) -> None:
    if not webhook_secret_configured(integration=integration):
        webhook_secret_set(integration=integration, secret=secret)


def _shopify_deliveries(secret: str) -> list[tuple[str, str, bytes, dict[str, str]]]:
    from integrations.sandbox.shopify import INVENTORY_ITEM_BASE_ID, LOCATIONS

    order = {
        "id": 450789901,
        "name": "#9001",
        "order_number": 9001,
        "email": "ada.lovelace@mail.example.com",
        "created_at": "2026-05-01T10:15:29-04:00",
        "updated_at": "2026-05-01T10:15:30-04:00",
        "currency": "USD",
        "total_price": "409.94",
        "subtotal_price": "398.00",
        "total_tax": "11.94",
        "financial_status": "paid",
        "fulfillment_status": None,
        "customer": {
            "id": 207119901,
            "email": "ada.lovelace@mail.example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
        },
        "line_items": [
            {
                "id": 466157901,
                "product_id": 632910392,
                "variant_id": 39072856,
                "sku": "RING-18K-SOL-6",
                "title": "18k Solitaire Ring",
                "variant_title": "Size 6",
                "quantity": 1,
                "price": "398.00",
            }
        ],
        "refunds": [],
    }
    customer = {
        "id": 207119902,
        "email": "grace.hopper@mail.example.com",
        "first_name": "Grace",
        "last_name": "Hopper",
        "phone": "+16135550142",
        "tags": "vip, engagement",
        "created_at": "2026-05-01T11:00:00-04:00",
        "updated_at": "2026-05-01T11:00:00-04:00",
        "verified_email": True,
        "default_address": {
            "address1": "12 Market Street",
            "city": "Louisville",
            "country": "United States",
            "zip": "40202",
        },
    }
    level = {
        "inventory_item_id": INVENTORY_ITEM_BASE_ID,
        "location_id": LOCATIONS[0]["id"],
        "available": 7,
        "updated_at": "2026-05-01T12:00:00-04:00",
    }
    result = []
    for label, topic, payload, webhook_id in (
        ("order created", "orders/create", order, "b54557e4-demo-4b37-8a5f-000000000001"),
        ("customer created", "customers/create", customer, "b54557e4-demo-4b37-8a5f-000000000002"),
        ("inventory updated", "inventory_levels/update", level, "b54557e4-demo-4b37-8a5f-000000000003"),
    ):
        body, headers = signing.shopify_delivery(payload, secret, topic=topic, webhook_id=webhook_id)
        result.append((label, webhook_id, body, headers))
    return result


def _stripe_payment(secret: str) -> tuple[str, str, bytes, dict[str, str]]:
    """A PaymentIntent that succeeded for the newest demo order (linked through its CRM number)."""
    order = Order.objects.order_by("-placed_at", "-id").only("number", "total", "currency").first()
    amount = int((order.total if order else 1250) * 100)
    intent = {
        "id": "pi_3Q1aBcDemoJewelia0000001",
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": (order.currency if order else "USD").lower(),
        "status": "succeeded",
        "customer": None,
        "latest_charge": "ch_3Q1aBcDemoJewelia0000001",
        "receipt_email": "ada.lovelace@mail.example.com",
        "metadata": {"jewelia_order": order.number} if order else {},
        "created": int(time.time()) - 10,
        "livemode": False,
    }
    event_id = "evt_3Q1aBcDemoJewelia0000001"
    event = signing.stripe_event("payment_intent.succeeded", intent, event_id=event_id)
    body, headers = signing.stripe_delivery(event, secret)
    return "payment succeeded", event_id, body, headers
