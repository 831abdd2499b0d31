"""The receiver with the real Stripe and Shopify verifiers: the fact sheets' vectors and their negative cases
(`shared/providers/stripe.md` §6 and §8, `shopify.md` §6 and §8), end to end through the endpoint."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from unittest import mock

import pytest

from integrations.sandbox import signing
from integrations.services import integration_create
from jewelia.core.actors import Actor
from webhooks.models import WebhookEvent
from webhooks.services import webhook_secret_set
from webhooks.tests.stripe_setup import stripe_integration_create

pytestmark = pytest.mark.django_db

STRIPE_SECRET = "whsec_test_secret"
SDK_PAYLOAD = (
    b'{\n  "id": "evt_test_webhook",\n  "object": "event",\n'
    b'  "data": { "object": { "id": "rdr_123", "object": "terminal.reader" } }\n}'
)
SINGLE_LINE = b'{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}'


@pytest.fixture
def stripe_integration(db):
    return stripe_integration_create(secret=STRIPE_SECRET)


@pytest.fixture
def shopify_integration(db):
    integration = integration_create(
        actor=Actor.system("tests"),
        name="Shopify",
        provider="shopify",
        config={"shop": "jewelia-demo"},
        credentials={"access_token": "shpat_x"},
        status="active",
    )
    webhook_secret_set(integration=integration, secret="shpss_test_client_secret")
    return integration


def _at(seconds: int):
    """Freeze the receiver's clock at a Unix time (the vectors are signed in 2023)."""
    return mock.patch("webhooks.services.receiving.timezone.now", return_value=datetime.fromtimestamp(seconds, UTC))


def _stripe_post(post_delivery, integration, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": signing.STRIPE_USER_AGENT}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return post_delivery(integration, body, headers)


def _fresh_event(event_id: str = "evt_fresh") -> bytes:
    return signing.encode(
        signing.stripe_event("customer.created", {"id": "cus_1", "object": "customer"}, event_id=event_id)
    )


def test_stripe_single_line_vector_is_accepted_and_stored(stripe_integration, post_delivery):
    signature = "t=1700000000,v1=67da5088c63e080c71bd2bb0cb5c03d85a8fc6a21ce3aaf484df809654745b92"

    with _at(1_700_000_100):
        response = _stripe_post(post_delivery, stripe_integration, SINGLE_LINE, signature)

    assert response.json() == {"received": True, "status": "pending"}
    stored = WebhookEvent.objects.get()
    assert (stored.provider_event_id, stored.event_type) == ("evt_1", "payment_intent.succeeded")


def test_stripe_sdk_vector_verifies_and_its_typeless_event_is_stored_failed(stripe_integration, post_delivery):
    signature = "t=1700000000,v1=3bfab77baf5f7b6991a46c9b53b6547d7afc56148b10468fcad9f35c1992ffbd"

    with _at(1_700_000_000):
        response = _stripe_post(post_delivery, stripe_integration, SDK_PAYLOAD, signature)

    assert response.status_code == 400  # authentic (not 401), but an event without a type cannot be processed
    assert WebhookEvent.objects.get().status == "failed"


def test_stripe_tampered_body_is_refused(stripe_integration, post_delivery):
    signature = "t=1700000000,v1=67da5088c63e080c71bd2bb0cb5c03d85a8fc6a21ce3aaf484df809654745b92"

    with _at(1_700_000_100):
        response = _stripe_post(post_delivery, stripe_integration, SINGLE_LINE.replace(b"evt_1", b"evt_2"), signature)

    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0


def test_stripe_wrong_secret_is_refused(stripe_integration, post_delivery):
    body = _fresh_event()
    signature = signing.sign_stripe(body, "whsec_someone_else", int(time.time()))

    assert _stripe_post(post_delivery, stripe_integration, body, signature).status_code == 401


def test_stripe_missing_signature_header_is_refused(stripe_integration, post_delivery):
    assert _stripe_post(post_delivery, stripe_integration, _fresh_event(), None).status_code == 401


def test_stripe_unparseable_signature_header_is_refused(stripe_integration, post_delivery):
    assert _stripe_post(post_delivery, stripe_integration, _fresh_event(), "bad_header").status_code == 401


def test_stripe_v0_only_signature_is_refused(stripe_integration, post_delivery):
    body = _fresh_event()
    v1 = signing.sign_stripe(body, STRIPE_SECRET, int(time.time()))

    response = _stripe_post(post_delivery, stripe_integration, body, v1.replace("v1=", "v0="))

    assert response.status_code == 401


def test_stripe_timestamp_older_than_tolerance_is_refused(stripe_integration, post_delivery):
    body = _fresh_event()
    signature = signing.sign_stripe(body, STRIPE_SECRET, int(time.time()) - 301)

    assert _stripe_post(post_delivery, stripe_integration, body, signature).status_code == 401
    assert WebhookEvent.objects.count() == 0


def test_stripe_extra_bad_v1_beside_a_good_one_is_accepted(stripe_integration, post_delivery):
    body = _fresh_event()
    signature = signing.sign_stripe(body, STRIPE_SECRET, int(time.time())) + ",v1=bad_signature"

    assert _stripe_post(post_delivery, stripe_integration, body, signature).status_code == 200


def test_stripe_duplicate_event_id_is_not_stored_twice(stripe_integration, post_delivery):
    body = _fresh_event("evt_twice")
    for _ in range(2):
        # Stripe's retry re-signs the same body with a new timestamp.
        response = _stripe_post(
            post_delivery, stripe_integration, body, signing.sign_stripe(body, STRIPE_SECRET, int(time.time()))
        )

    assert response.json() == {"received": True, "duplicate": True}
    assert WebhookEvent.objects.filter(provider_event_id="evt_twice").count() == 1


def test_shopify_vector_is_accepted_with_webhook_and_event_ids(shopify_integration, post_delivery):
    body = b'{"id":820982911946154508,"email":"jon@example.com","total_price":"199.00","currency":"USD"}'
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": "sCxnZD95TW08i78Q3OS+8cU/hL1347pIHhrKZIEzTFU=",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Triggered-At": "2026-05-01T10:15:30.123456Z",
    }

    assert post_delivery(shopify_integration, body, headers).status_code == 200

    stored = WebhookEvent.objects.get()
    assert (stored.provider_event_id, stored.group_id, stored.event_type) == (
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "orders/create",
    )


def test_shopify_wrong_hmac_is_refused(shopify_integration, post_delivery):
    body, headers = signing.shopify_delivery({"id": 1}, "shpss_wrong", topic="customers/create")

    assert post_delivery(shopify_integration, body, headers).status_code == 401


def test_shopify_previous_client_secret_verifies_during_rotation(shopify_integration, post_delivery):
    webhook_secret_set(integration=shopify_integration, secret="shpss_rotated_client_secret")
    body, headers = signing.shopify_delivery({"id": 1}, "shpss_test_client_secret", topic="customers/create")

    assert post_delivery(shopify_integration, body, headers).status_code == 200


def _intent_event(event_id: str, created: int, *, status: str, failed: bool = False) -> dict:
    intent = {
        "id": "pi_late_1",
        "object": "payment_intent",
        "amount": 48900,
        "amount_received": 0 if failed else 48900,
        "currency": "eur",
        "status": status,
        "customer": None,
        "latest_charge": "ch_late_1",
        "last_payment_error": {"type": "card_error", "code": "card_declined"} if failed else None,
        "metadata": {},
        "created": created - 10,
    }
    event_type = "payment_intent.payment_failed" if failed else "payment_intent.succeeded"
    return signing.stripe_event(event_type, intent, event_id=event_id, created=created)


def test_stripe_failure_delivered_after_the_later_success_does_not_undo_it(stripe_integration, post_delivery):
    from orders.models import Payment
    from webhooks.services import webhook_events_drain

    now = int(time.time())
    for event in (
        _intent_event("evt_success", now - 60, status="succeeded"),  # the retry that succeeded, delivered first
        _intent_event("evt_failure", now - 120, status="requires_payment_method", failed=True),  # the first try
    ):
        body = signing.encode(event)
        signature = signing.sign_stripe(body, STRIPE_SECRET, now)
        assert _stripe_post(post_delivery, stripe_integration, body, signature).status_code == 200

    webhook_events_drain()

    payment = Payment.objects.get(provider="stripe", external_id="pi_late_1")
    assert (payment.status, payment.captured_amount) == ("captured", Decimal("489.00"))
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
