"""Shopify webhook signatures, parsing and handlers (`shared/providers/shopify.md` §6-§8)."""

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from integrations.errors import BadRecordError
from integrations.providers.base import Capability, WebhookSignatureError
from integrations.providers.registry import get_provider
from integrations.providers.shopify import mappers, webhooks
from integrations.records import CustomerRecord, InventoryRecord
from integrations.sandbox.signing import shopify_delivery, sign_shopify
from integrations.sandbox.testing import sandbox_connection
from integrations.tests.providers.test_shopify import ORDER_1001

FIXTURES = Path(__file__).parent / "fixtures" / "shopify_webhooks"
NOW = datetime(2026, 5, 1, 14, 15, 31, tzinfo=UTC)
EDT = timezone(timedelta(hours=-4))
VECTORS = [
    (
        "shpss_test_client_secret",
        b'{"id":820982911946154508,"email":"jon@example.com","total_price":"199.00","currency":"USD"}',
        "sCxnZD95TW08i78Q3OS+8cU/hL1347pIHhrKZIEzTFU=",
    ),
    (
        "test-webhook-secret",
        b'{"id":1234567890,"email":"customer@example.com","total_price":"123.45"}',
        "QNyObTlKbMx2qDlPF/ZOZcBqg5OgPg+2oky3zldc0Gw=",
    ),
]
SECRET, BODY, HMAC = VECTORS[0]
HEADERS = {
    "Content-Type": "application/json",
    "X-Shopify-Topic": "orders/create",
    "X-Shopify-Shop-Domain": "jewelia-demo.myshopify.com",
    "X-Shopify-API-Version": "2026-04",
    "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    "X-Shopify-Triggered-At": "2026-05-01T10:15:30.123456789Z",
    "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
}


def verify(hmac_header: str | None, body: bytes = BODY, *, secrets=(SECRET,), name="X-Shopify-Hmac-Sha256"):
    headers = dict(HEADERS)
    if hmac_header is not None:
        headers[name] = hmac_header
    webhooks.verify(headers=headers, body=body, secrets=list(secrets), now=NOW)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_bytes())


# --- signatures -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("secret", "body", "expected"), VECTORS)
def test_hmac_matches_the_sheet_vectors(secret, body, expected):
    assert webhooks.compute_hmac(secret=secret, body=body) == expected
    assert sign_shopify(body, secret) == expected


@pytest.mark.parametrize(("secret", "body", "expected"), VECTORS)
def test_a_delivery_with_the_vector_hmac_verifies(secret, body, expected):
    verify(expected, body, secrets=[secret])


@pytest.mark.parametrize("name", ["X-Shopify-Hmac-SHA256", "x-shopify-hmac-sha256"])
def test_the_header_name_is_case_insensitive(name):
    verify(HMAC, name=name)


def test_a_tampered_body_is_rejected():
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify(HMAC, BODY.replace(b"199.00", b"1.00"))


def test_a_re_serialised_body_is_rejected():
    with pytest.raises(WebhookSignatureError):
        verify(HMAC, json.dumps(json.loads(BODY)).encode())


def test_a_wrong_secret_is_rejected():
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify(HMAC, secrets=["shpss_other_secret"])


def test_a_missing_header_is_rejected():
    with pytest.raises(WebhookSignatureError, match="missing"):
        verify(None)


@pytest.mark.parametrize("value", ["", "not-base64!", HMAC[:-4], "ünï"])
def test_a_malformed_header_is_rejected(value):
    with pytest.raises(WebhookSignatureError):
        verify(value)


def test_the_previous_secret_is_accepted_during_a_rotation():
    verify(HMAC, secrets=["shpss_new_client_secret", SECRET])


def test_the_sandbox_delivery_helper_signs_what_it_sends():
    body, headers = shopify_delivery({"id": 1}, SECRET, topic="customers/create")

    webhooks.verify(headers=headers, body=body, secrets=[SECRET], now=NOW)
    assert webhooks.parse(headers=headers, body=body).event_type == "customers/create"


# --- parsing ----------------------------------------------------------------------------------------------------


def test_parse_reads_the_delivery_and_event_ids_topic_and_time():
    event = webhooks.parse(headers=HEADERS, body=BODY)

    assert (event.event_id, event.group_id, event.event_type, event.occurred_at) == (
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "orders/create",
        datetime(2026, 5, 1, 10, 15, 30, 123456, tzinfo=UTC),
    )
    assert event.payload["id"] == 820982911946154508


def test_an_unreadable_triggered_at_is_ignored():
    event = webhooks.parse(headers={**HEADERS, "X-Shopify-Triggered-At": "yesterday"}, body=BODY)

    assert event.occurred_at is None


@pytest.mark.parametrize(
    ("changes", "body", "message"),
    [
        ({"X-Shopify-Webhook-Id": ""}, BODY, "Webhook-Id"),
        ({"X-Shopify-Topic": ""}, BODY, "Topic"),
        ({}, b"{truncated", "not valid JSON"),
        ({}, b"\xff\xfe", "not valid JSON"),
        ({}, b"[]", "not a JSON object"),
    ],
)
def test_parse_refuses_deliveries_it_cannot_use(changes, body, message):
    with pytest.raises(ValueError, match=message):
        webhooks.parse(headers={**HEADERS, **changes}, body=body)


# --- the provider ------------------------------------------------------------------------------------------------


def test_the_shopify_provider_declares_webhooks_and_delegates_to_this_module():
    provider = get_provider("shopify")

    assert provider.has(Capability.WEBHOOKS)
    provider.verify_webhook(headers={**HEADERS, "X-Shopify-Hmac-Sha256": HMAC}, body=BODY, secrets=[SECRET], now=NOW)
    assert provider.parse_webhook(headers=HEADERS, body=BODY).event_id == HEADERS["X-Shopify-Webhook-Id"]
    assert sorted(provider.webhook_handlers()) == [
        "app/uninstalled",
        "customers/create",
        "customers/update",
        "inventory_levels/update",
        "orders/cancelled",
        "orders/create",
        "orders/fulfilled",
        "orders/paid",
        "orders/partially_fulfilled",
        "orders/updated",
        "products/create",
        "products/update",
        "refunds/create",
    ]


# --- handlers ----------------------------------------------------------------------------------------------------


@pytest.fixture
def provider():
    return get_provider("shopify")


@pytest.fixture
def connection(provider, shopify_sandbox):
    return sandbox_connection(
        provider, config=shopify_sandbox.config(), credentials=shopify_sandbox.credentials(), rate_limiting=False
    )


@pytest.fixture
def offline_connection(provider):
    """For handlers that need nothing from the API: any call would fail to connect."""
    return sandbox_connection(
        provider,
        config={"shop": "jewelia-demo", "base_url": "http://127.0.0.1:9"},
        credentials={"access_token": "shpat_x"},
        rate_limiting=False,
    )


def handle(provider, connection, topic: str, payload: dict):
    body, headers = shopify_delivery(payload, SECRET, topic=topic, webhook_id="w-1", event_id="e-1")
    event = provider.parse_webhook(headers=headers, body=body)
    return provider.webhook_handlers()[topic](event, connection)


@pytest.mark.parametrize(
    "topic", ["orders/create", "orders/updated", "orders/paid", "orders/fulfilled", "orders/partially_fulfilled"]
)
def test_order_topics_give_the_order_with_its_payment(provider, offline_connection, topic):
    outcome = handle(provider, offline_connection, topic, fixture("orders_create"))

    assert (outcome.resource, outcome.records, outcome.disconnect) == ("orders", [ORDER_1001], False)


def test_orders_cancelled_gives_a_cancelled_voided_order(provider, offline_connection):
    outcome = handle(provider, offline_connection, "orders/cancelled", fixture("orders_cancelled"))

    (order,) = outcome.records
    assert (order.external_id, order.status, order.payment_status, order.notes) == (
        "450789470",
        "cancelled",
        "voided",
        "Changed her mind",
    )
    assert order.items[0].attributes == {"variant": "16 in", "Engraving": "A.L."}
    assert (order.payments[0].status, order.payments[0].method, order.payments[0].captured_amount) == (
        "voided",
        "shopify_payments",
        Decimal("0"),
    )


def test_a_test_order_is_recorded_without_records(provider, offline_connection):
    outcome = handle(provider, offline_connection, "orders/create", {**fixture("orders_create"), "test": True})

    assert (outcome.records, outcome.note) == ([], "test order: not imported")


def test_an_order_the_mapper_cannot_read_fails_as_a_bad_record(provider, offline_connection):
    with pytest.raises(BadRecordError, match="total_price"):
        handle(provider, offline_connection, "orders/updated", {**fixture("orders_create"), "total_price": "lots"})


def test_refunds_create_reads_the_order_back(provider, connection, shopify_sandbox):
    payload = {**fixture("refunds_create"), "order_id": 450789470}

    outcome = handle(provider, connection, "refunds/create", payload)

    assert [r.path for r in shopify_sandbox.requests] == ["/admin/api/2026-04/orders/450789470.json"]
    assert (outcome.resource, outcome.records) == ("orders", mappers.order_records(shopify_sandbox.order(450789470)))


def test_refunds_create_for_a_deleted_order_is_noted(provider, connection, shopify_sandbox):
    shopify_sandbox.delete("orders", 450789470)

    outcome = handle(provider, connection, "refunds/create", {**fixture("refunds_create"), "order_id": 450789470})

    assert (outcome.records, outcome.note) == ([], "order 450789470 no longer exists in Shopify")


def test_refunds_create_without_an_order_id_is_a_bad_record(provider, offline_connection):
    with pytest.raises(BadRecordError, match="order_id"):
        handle(provider, offline_connection, "refunds/create", {"id": 1})


@pytest.mark.parametrize("topic", ["customers/create", "customers/update"])
def test_customer_topics_give_the_customer(provider, offline_connection, topic):
    outcome = handle(provider, offline_connection, topic, fixture("customers_update"))

    assert (outcome.resource, outcome.records) == (
        "customers",
        [
            CustomerRecord(
                external_id="207119551",
                source_updated_at=datetime(2026, 4, 30, 9, 0, tzinfo=EDT),
                name="Bob Norman",
                email="bob.norman@mail.example.com",
                phone="+16135551111",
                addresses=[
                    {
                        "kind": "shipping",
                        "line1": "Chestnut Street 92",
                        "line2": "",
                        "city": "Louisville",
                        "region": "KY",
                        "postal_code": "40202",
                        "country": "US",
                    }
                ],
                tags=["vip", "bridal"],
                marketing_consent=True,
                notes="Prefers white gold",
            )
        ],
    )


@pytest.mark.parametrize("topic", ["products/create", "products/update"])
def test_product_topics_give_one_record_per_variant_in_the_shops_currency(provider, connection, shopify_sandbox, topic):
    outcome = handle(provider, connection, topic, fixture("products_update"))

    assert [r.path for r in shopify_sandbox.requests] == ["/admin/api/2026-04/shop.json"]
    assert outcome.resource == "products"
    assert [(r.external_id, r.sku, r.name, r.price, r.currency) for r in outcome.records] == [
        ("39072855", "RING-18K-SOL-5", "18k Solitaire Ring - 5", Decimal("398.00"), "USD"),
        ("39072856", "RING-18K-SOL-6", "18k Solitaire Ring - 6", Decimal("420.00"), "USD"),
    ]
    assert {(r.category, r.metal, r.gemstone, r.active) for r in outcome.records} == {
        ("ring", "18k Yellow Gold", "Diamond", True)
    }
    assert {r.source_updated_at for r in outcome.records} == {datetime(2026, 5, 4, 8, 0, tzinfo=EDT)}


def test_inventory_levels_update_sums_every_location_of_the_item(provider, connection, shopify_sandbox):
    shopify_sandbox.set_inventory_level(808950810, 655441491, 6)
    expected = sum(level["available"] or 0 for level in shopify_sandbox.levels_for(808950810))

    outcome = handle(provider, connection, "inventory_levels/update", fixture("inventory_levels_update"))

    assert outcome.resource == "inventory"
    (record,) = outcome.records
    assert (record.external_id, record.sku, record.quantity) == ("808950810", "RING-18K-SOL-5", expected)
    assert isinstance(record, InventoryRecord)
    assert record.source_updated_at == max(
        datetime.fromisoformat(level["updated_at"]) for level in shopify_sandbox.levels_for(808950810)
    )
    assert [r.path for r in shopify_sandbox.requests] == [
        "/admin/api/2026-04/inventory_items/808950810.json",
        "/admin/api/2026-04/inventory_levels.json",
    ]


def test_inventory_levels_update_for_a_vanished_item_is_noted(provider, connection):
    payload = {**fixture("inventory_levels_update"), "inventory_item_id": 999}

    outcome = handle(provider, connection, "inventory_levels/update", payload)

    assert (outcome.records, outcome.note) == ([], "inventory item 999 no longer exists")


def test_app_uninstalled_disconnects_the_integration(provider, offline_connection):
    outcome = handle(provider, offline_connection, "app/uninstalled", fixture("app_uninstalled"))

    assert (outcome.disconnect, outcome.records, outcome.note) == (
        True,
        [],
        "the app was uninstalled from jewelia-demo.myshopify.com",
    )
