from decimal import Decimal

import pytest

from jewelia.core.actors import Actor
from jewelia.core.testing import assert_error
from orders.models import Order, OrderItem, OrderStatusHistory, StockMovement
from orders.services import ItemInput, order_create, order_transition
from orders.tests.factories import CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db
URL = "/api/orders/"


def _payload(**overrides):
    payload = {
        "currency": "EUR",
        "channel": "in_store",
        "items": [{"name": "Solitaire ring", "sku": "RG-1", "quantity": 2, "unit_price": "150.00"}],
        "tax_total": "57.00",
    }
    payload.update(overrides)
    return payload


def _assert_unchanged():
    assert Order.objects.count() == 0
    assert OrderItem.objects.count() == 0
    assert OrderStatusHistory.objects.count() == 0


def test_create_computes_totals_and_returns_the_order(staff_client):
    customer = CustomerFactory(name="Ada Lovelace")
    response = staff_client.post(URL, _payload(customer=customer.pk, shipping_total="9.50"), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"].startswith("J-")
    assert (body["subtotal"], body["tax_total"], body["shipping_total"], body["total"]) == (
        "300.00",
        "57.00",
        "9.50",
        "366.50",
    )
    assert body["items"][0]["line_total"] == "300.00"
    assert body["customer"] == {"id": customer.pk, "name": "Ada Lovelace", "email": customer.email}
    assert body["status"] == "pending"
    assert body["allowed_transitions"] == ["confirmed", "cancelled"]
    assert body["status_history"][0]["actor_label"] == "staff"


def test_create_defaults_price_sku_and_name_from_the_product(staff_client):
    product = ProductFactory(sku="NK-9", name="Pearl necklace", price=Decimal("420.00"))
    response = staff_client.post(URL, _payload(items=[{"product": product.pk, "quantity": 1}]), format="json")
    assert response.status_code == 201
    item = response.json()["items"][0]
    assert (item["product"], item["sku"], item["name"], item["unit_price"]) == (
        product.pk,
        "NK-9",
        "Pearl necklace",
        "420.00",
    )


def test_create_links_the_product_by_sku(staff_client):
    product = ProductFactory(sku="RG-1")
    response = staff_client.post(URL, _payload(), format="json")
    assert response.json()["items"][0]["product"] == product.pk


def test_totals_mismatch_is_rejected_and_nothing_is_saved(staff_client):
    response = staff_client.post(URL, _payload(total="300.00"), format="json")
    error = assert_error(response, 400, "totals_mismatch")
    assert error["details"]["fields"]["total"] == ["Does not match the computed total 357.00 (got 300.00)."]
    _assert_unchanged()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_payload(colour="red"), "colour"),
        (_payload(currency="EUX"), "currency"),
        (_payload(currency=12), "currency"),
        (_payload(items=[{"name": "Ring", "quantity": -1, "unit_price": "10.00"}]), "items"),
        (_payload(items=[{"name": "Ring", "quantity": "two", "unit_price": "10.00"}]), "items"),
        (_payload(items=[{"name": "Ring", "quantity": 1, "unit_price": "-5.00"}]), "items"),
        (_payload(items=[{"name": "Ring", "quantity": 1, "unit_price": "10.00", "weight": 3}]), "items"),
        (_payload(items=[]), "items"),
        (_payload(tax_total="abc"), "tax_total"),
        (_payload(customer=999999), "customer"),
        (_payload(status="shipped"), "status"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(staff_client, payload, field):
    response = staff_client.post(URL, payload, format="json")
    error = assert_error(response, 400, "validation_error")
    assert field in error["details"]["fields"]
    _assert_unchanged()


def test_amount_with_too_many_decimals_for_the_currency_is_rejected(staff_client):
    response = staff_client.post(
        URL, _payload(currency="JPY", items=[{"name": "Ring", "quantity": 1, "unit_price": "1000.50"}]), format="json"
    )
    assert assert_error(response, 400, "validation_error")["details"]["fields"]["items"] == [
        {"unit_price": ["JPY amounts have at most 0 decimals."]}
    ]
    _assert_unchanged()


def test_malformed_json_is_a_parse_error(staff_client):
    response = staff_client.generic("POST", URL, '{"currency": "EUR",', content_type="application/json")
    assert_error(response, 400, "parse_error")
    _assert_unchanged()


def test_wrong_content_type_is_a_415(staff_client):
    response = staff_client.generic("POST", URL, "currency=EUR", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")
    _assert_unchanged()


def test_body_over_the_limit_is_a_413(staff_client, settings):
    settings.API_MAX_BODY_BYTES = 100
    response = staff_client.post(URL, _payload(notes="x" * 200), format="json")
    assert_error(response, 413, "payload_too_large")
    _assert_unchanged()


def _order(**kwargs):
    items = kwargs.pop("items", [ItemInput(name="Ring", quantity=1, unit_price=Decimal("100.00"))])
    return order_create(actor=Actor.system(), currency=kwargs.pop("currency", "EUR"), items=items, **kwargs)


def test_patch_changes_fields_and_recomputes_total(staff_client):
    order = _order()
    response = staff_client.patch(f"{URL}{order.pk}/", {"discount_total": "10.00", "notes": "Gift"}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["total"], response.json()["notes"]) == ("90.00", "Gift")


def test_patch_cannot_set_status(staff_client):
    order = _order()
    response = staff_client.patch(f"{URL}{order.pk}/", {"status": "confirmed"}, format="json")
    assert assert_error(response, 400, "validation_error")["details"]["fields"] == {"status": ["Unknown field."]}
    order.refresh_from_db()
    assert order.status == "pending"


def test_transition_records_history_visible_in_the_detail(staff_client):
    order = _order()
    response = staff_client.post(
        f"{URL}{order.pk}/transition/", {"to_status": "confirmed", "note": "Paid deposit"}, format="json"
    )
    assert response.status_code == 200
    history = response.json()["status_history"]
    assert [(h["from_status"], h["to_status"], h["note"]) for h in history] == [
        ("", "pending", "Order created."),
        ("pending", "confirmed", "Paid deposit"),
    ]
    assert history[1]["actor_type"] == "user"


def test_illegal_transition_is_a_409_listing_allowed_statuses(staff_client):
    order = _order()
    response = staff_client.post(f"{URL}{order.pk}/transition/", {"to_status": "delivered"}, format="json")
    error = assert_error(response, 409, "invalid_transition")
    assert error["details"]["allowed"] == ["confirmed", "cancelled"]
    assert "confirmed, cancelled" in error["message"]


def test_delete_of_a_confirmed_order_is_a_409(staff_client):
    order = _order()
    order_transition(order=order, to_status="confirmed", actor=Actor.system())
    response = staff_client.delete(f"{URL}{order.pk}/")
    assert assert_error(response, 409, "not_deletable")["details"]["status"] == "confirmed"
    assert Order.objects.filter(pk=order.pk).exists()


def test_delete_of_a_pending_order(staff_client):
    order = _order()
    assert staff_client.delete(f"{URL}{order.pk}/").status_code == 204
    assert not Order.objects.exists()


def test_anonymous_requests_are_refused(api_client):
    assert_error(api_client.get(URL), 401, "not_authenticated")


def test_staff_without_model_permission_is_refused(api_client, django_user_model):
    user = django_user_model.objects.create_user(username="clerk", password="pw", is_staff=True)
    api_client.force_authenticate(user=user)
    assert_error(api_client.get(URL), 403, "permission_denied")


@pytest.mark.parametrize(
    ("currency", "unit_price", "shipping_total", "expected"),
    [
        ("JPY", "1250", "500", ("1250", "500", "1750")),
        ("KWD", "1.125", "0.5", ("1.125", "0.500", "1.625")),
        ("EUR", "1250", "9.5", ("1250.00", "9.50", "1259.50")),
    ],
)
def test_money_is_a_string_with_the_currencys_decimals(staff_client, currency, unit_price, shipping_total, expected):
    payload = _payload(
        currency=currency,
        items=[{"name": "Ring", "quantity": 1, "unit_price": unit_price}],
        tax_total="0",
        shipping_total=shipping_total,
    )
    response = staff_client.post(URL, payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["items"][0]["unit_price"], body["shipping_total"], body["total"]) == expected
    listed = staff_client.get(URL).json()["results"][0]
    assert (listed["items"][0]["unit_price"], listed["shipping_total"], listed["total"]) == expected


def test_orders_do_not_move_stock(staff_client):
    product = ProductFactory(sku="RG-1", stock_on_hand=5)
    response = staff_client.post(URL, _payload(items=[{"product": product.pk, "quantity": 2}]), format="json")
    assert response.status_code == 201, response.json()
    order_id = response.json()["id"]
    for to_status in ("confirmed", "ready", "delivered", "completed"):
        moved = staff_client.post(f"{URL}{order_id}/transition/", {"to_status": to_status}, format="json")
        assert moved.status_code == 200, moved.json()
    product.refresh_from_db()
    assert product.stock_on_hand == 5
    assert not StockMovement.objects.exists()


def test_fast_order_representation_matches_the_declared_serializer_fields():
    from rest_framework import serializers

    from orders.serializers import OrderOutputSerializer
    from orders.tests.factories import OrderFactory, OrderItemFactory

    order = OrderFactory(due_date="2025-05-01", currency="KWD", total=Decimal("1.125"))
    OrderItemFactory(order=order, attributes={"ring_size": "54"}, unit_price=Decimal("1.125"))
    OrderFactory(customer=None)
    for row in Order.objects.select_related("customer").prefetch_related("items"):
        serializer = OrderOutputSerializer(row)
        generic = serializers.ModelSerializer.to_representation(serializer, row)
        assert serializer.to_representation(row) == generic
