from datetime import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from jewelia.core.testing import assert_error
from orders.models import Customer, Product, StockMovement
from orders.tests.factories import CustomerFactory, OrderFactory, OrderItemFactory, ProductFactory

pytestmark = pytest.mark.django_db


def test_create_customer_stamps_marketing_consent_with_source_and_time(staff_client):
    response = staff_client.post(
        "/api/customers/", {"name": "Ada", "email": "Ada@Example.com", "marketing_consent": True}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["marketing_consent_source"] == "user: staff"
    assert body["marketing_consent_at"] is not None


def test_duplicate_email_in_another_case_is_a_400(staff_client):
    CustomerFactory(email="ada@example.com")
    response = staff_client.post("/api/customers/", {"name": "Ada", "email": "ADA@example.com"}, format="json")
    assert assert_error(response, 400, "validation_error")["details"]["fields"]["email"] == [
        "A customer with this email already exists."
    ]
    assert Customer.objects.count() == 1


def test_customer_with_unknown_field_or_bad_address_is_a_400(staff_client):
    for payload in ({"name": "Ada", "vip": True}, {"name": "Ada", "addresses": [{"line1": "x"}]}):
        response = staff_client.post("/api/customers/", payload, format="json")
        assert_error(response, 400, "validation_error")
    assert not Customer.objects.exists()


def test_customer_with_orders_cannot_be_deleted(staff_client):
    order = OrderFactory()
    response = staff_client.delete(f"/api/customers/{order.customer_id}/")
    assert_error(response, 409, "has_orders")


def test_customer_orders_with_lifetime_figures(staff_client):
    customer = CustomerFactory()
    tz = timezone.get_current_timezone()
    first = datetime(2024, 1, 5, 10, tzinfo=tz)
    last = datetime(2025, 6, 1, 10, tzinfo=tz)
    OrderFactory(customer=customer, currency="EUR", total=Decimal("100.00"), status="completed", placed_at=first)
    OrderFactory(customer=customer, currency="EUR", total=Decimal("50.50"), status="confirmed", placed_at=last)
    OrderFactory(customer=customer, currency="EUR", total=Decimal("70.00"), status="cancelled", placed_at=last)
    OrderFactory(customer=customer, currency="USD", total=Decimal("20.00"), status="pending", placed_at=first)
    OrderFactory(total=Decimal("999.00"))  # someone else's
    body = staff_client.get(f"/api/customers/{customer.pk}/orders/").json()
    assert body["count"] == 4
    assert body["lifetime"] == {
        "orders": 4,
        "first_order_at": "2024-01-05T10:00:00Z",
        "last_order_at": "2025-06-01T10:00:00Z",
        "revenue": [
            {"currency": "EUR", "amount": "150.50", "orders": 2},
            {"currency": "USD", "amount": "20.00", "orders": 1},
        ],
    }
    cursor_body = staff_client.get(f"/api/customers/{customer.pk}/orders/?pagination=cursor&status=cancelled").json()
    assert [row["total"] for row in cursor_body["results"]] == ["70.00"]


def test_customer_orders_of_an_unknown_customer_is_a_404(staff_client):
    response = staff_client.get("/api/customers/999999/orders/")
    assert_error(response, 404, "not_found")


def test_customer_list_search(staff_client):
    CustomerFactory(name="Grace Hopper", email="grace@example.com")
    CustomerFactory(name="Alan Turing", email="alan@example.com")
    body = staff_client.get("/api/customers/", {"q": "hopp"}).json()
    assert [row["name"] for row in body["results"]] == ["Grace Hopper"]


def test_create_product_with_opening_stock(staff_client):
    payload = {
        "sku": "RG-9",
        "name": "Ring",
        "category": "ring",
        "price": "1250.00",
        "currency": "eur",
        "stock_on_hand": 3,
    }
    response = staff_client.post("/api/products/", payload, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["price"], response.json()["currency"], response.json()["stock_on_hand"]) == (
        "1250.00",
        "EUR",
        3,
    )
    assert StockMovement.objects.get().delta == 3


def test_duplicate_sku_is_a_400(staff_client):
    ProductFactory(sku="RG-9")
    payload = {"sku": "RG-9", "name": "Ring", "price": "10.00", "currency": "EUR"}
    assert_error(staff_client.post("/api/products/", payload, format="json"), 400, "validation_error")
    assert Product.objects.count() == 1


def test_stock_is_not_a_patchable_field(staff_client):
    product = ProductFactory(stock_on_hand=2)
    response = staff_client.patch(f"/api/products/{product.pk}/", {"stock_on_hand": 10}, format="json")
    assert assert_error(response, 400, "validation_error")["details"]["fields"] == {
        "stock_on_hand": ["Change stock with POST adjust-stock/."]
    }
    product.refresh_from_db()
    assert product.stock_on_hand == 2


def test_adjust_stock_records_a_movement_and_refuses_negative_stock(staff_client):
    product = ProductFactory(stock_on_hand=2)
    url = f"/api/products/{product.pk}/adjust-stock/"
    ok = staff_client.post(url, {"delta": -1, "reason": "sale", "note": "Walk-in"}, format="json")
    assert (ok.status_code, ok.json()["stock_on_hand"]) == (200, 1)
    refused = staff_client.post(url, {"delta": -5, "reason": "sale"}, format="json")
    assert_error(refused, 409, "insufficient_stock")
    movements = staff_client.get(f"/api/products/{product.pk}/stock-movements/").json()["results"]
    assert [(m["delta"], m["stock_after"], m["actor_label"]) for m in movements] == [(-1, 1, "staff")]


def test_product_with_sales_cannot_be_deleted(staff_client):
    product = ProductFactory()
    OrderItemFactory(product=product)
    assert_error(staff_client.delete(f"/api/products/{product.pk}/"), 409, "has_history")
    assert Product.objects.filter(pk=product.pk).exists()


def test_product_filters(staff_client):
    ProductFactory(sku="A", category="ring", stock_on_hand=0)
    ProductFactory(sku="B", category="watch", stock_on_hand=4)
    ProductFactory(sku="C", category="watch", stock_on_hand=0, active=False)
    skus = lambda query: [row["sku"] for row in staff_client.get(f"/api/products/{query}").json()["results"]]  # noqa: E731
    assert skus("?category=watch") == ["B", "C"]
    assert skus("?in_stock=true") == ["B"]
    assert skus("?active=false") == ["C"]
    assert skus("?sort=-sku&pagination=cursor") == ["C", "B", "A"]
