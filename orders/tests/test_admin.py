from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from jewelia.core.actors import Actor
from orders.models import Order, OrderStatsDirtyDay, OrderStatusHistory, Payment, Shipment, StockMovement
from orders.services import ItemInput, order_create
from orders.tests.factories import CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def order():
    return order_create(
        actor=Actor.system(),
        currency="EUR",
        customer=CustomerFactory(),
        items=[ItemInput(name="Ring", sku="RG-1", quantity=2, unit_price=Decimal("150.00"))],
    )


@pytest.fixture
def objects(order):
    payment = Payment.objects.create(order=order, provider="stripe", external_id="ch_1", amount=300, currency="EUR")
    shipment = Shipment.objects.create(order=order, carrier="dhl", tracking_number="JD0001")
    product = ProductFactory()
    return {"order": order, "customer": order.customer, "product": product, "payment": payment, "shipment": shipment}


@pytest.mark.parametrize("name", ["order", "customer", "product", "payment", "shipment"])
def test_changelist_and_change_page_render(admin_client, objects, name):
    obj = objects[name]
    changelist = admin_client.get(reverse(f"admin:orders_{name}_changelist"))
    assert changelist.status_code == 200
    change = admin_client.get(reverse(f"admin:orders_{name}_change", args=[obj.pk]))
    assert change.status_code == 200
    assert admin_client.get(reverse(f"admin:orders_{name}_add")).status_code == 200


def test_changelist_search_and_filters_render(admin_client, objects):
    url = reverse("admin:orders_order_changelist")
    response = admin_client.get(url, {"q": objects["order"].number, "status__exact": "pending"})
    assert response.status_code == 200
    assert objects["order"].number in response.content.decode()


def _order_form(order, **changes):
    data = {
        "external_reference": order.external_reference,
        "customer": order.customer_id,
        "channel": order.channel,
        "placed_at_0": order.placed_at.strftime("%Y-%m-%d"),
        "placed_at_1": order.placed_at.strftime("%H:%M:%S"),
        "due_date": "",
        "payment_status": order.payment_status,
        "fulfillment_status": order.fulfillment_status,
        "currency": order.currency,
        "discount_total": "0",
        "tax_total": "0",
        "shipping_total": "0",
        "notes": "",
        "transition_to": "",
        "transition_note": "",
    }
    for prefix, rows in (("items", order.items.all()), ("status_history", []), ("payments", []), ("shipments", [])):
        data[f"{prefix}-TOTAL_FORMS"] = str(len(rows))
        data[f"{prefix}-INITIAL_FORMS"] = str(len(rows))
        data[f"{prefix}-MIN_NUM_FORMS"] = "0"
        data[f"{prefix}-MAX_NUM_FORMS"] = "1000"
    for i, item in enumerate(order.items.all()):
        data.update(
            {
                f"items-{i}-id": item.pk,
                f"items-{i}-order": order.pk,
                f"items-{i}-position": item.position,
                f"items-{i}-product": "",
                f"items-{i}-sku": item.sku,
                f"items-{i}-name": item.name,
                f"items-{i}-quantity": item.quantity,
                f"items-{i}-unit_price": item.unit_price,
                f"items-{i}-attributes": "{}",
            }
        )
    data.update(changes)
    return data


def test_status_change_from_the_admin_goes_through_the_transition_service(admin_client, order):
    url = reverse("admin:orders_order_change", args=[order.pk])
    response = admin_client.post(url, _order_form(order, transition_to="confirmed", transition_note="Phoned"))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    order.refresh_from_db()
    assert order.status == "confirmed"
    last = OrderStatusHistory.objects.filter(order=order).order_by("-id").first()
    assert (last.from_status, last.to_status, last.note, last.actor_type, last.actor_label) == (
        "pending",
        "confirmed",
        "Phoned",
        "user",
        "staff",
    )


def test_admin_offers_only_allowed_next_statuses(admin_client, order):
    response = admin_client.get(reverse("admin:orders_order_change", args=[order.pk]))
    choices = [value for value, _label in response.context["adminform"].form.fields["transition_to"].choices]
    assert choices == ["", "confirmed", "cancelled"]


def test_admin_edit_of_a_charge_recomputes_the_total(admin_client, order):
    url = reverse("admin:orders_order_change", args=[order.pk])
    admin_client.post(url, _order_form(order, shipping_total="12.50"))
    order.refresh_from_db()
    assert order.total == Decimal("312.500")


def test_confirm_action_moves_pending_orders_and_reports_refusals(admin_client, order):
    other = order_create(
        actor=Actor.system(), currency="EUR", items=[ItemInput(name="X", quantity=1, unit_price=Decimal("1.00"))]
    )
    admin_client.post(
        reverse("admin:orders_order_changelist"), {"action": "confirm_orders", "_selected_action": [order.pk]}
    )
    admin_client.post(
        reverse("admin:orders_order_changelist"), {"action": "confirm_orders", "_selected_action": [order.pk, other.pk]}
    )
    order.refresh_from_db()
    other.refresh_from_db()
    assert (order.status, other.status) == ("confirmed", "confirmed")
    assert OrderStatusHistory.objects.filter(order=order, to_status="confirmed").count() == 1


def test_stock_adjustment_from_the_product_page_is_a_recorded_movement(admin_client, staff_user):
    product = ProductFactory(stock_on_hand=0)
    url = reverse("admin:orders_product_change", args=[product.pk])
    data = {
        "sku": product.sku,
        "active": "on",
        "name": product.name,
        "category": product.category,
        "metal": product.metal,
        "gemstone": "",
        "description": "",
        "price": "100.00",
        "currency": "EUR",
        "stock_delta": "3",
        "stock_reason": "restock",
        "stock_note": "Delivery 42",
        "stock_movements-TOTAL_FORMS": "0",
        "stock_movements-INITIAL_FORMS": "0",
        "stock_movements-MIN_NUM_FORMS": "0",
        "stock_movements-MAX_NUM_FORMS": "0",
    }
    assert admin_client.post(url, data).status_code == 302
    product.refresh_from_db()
    assert product.stock_on_hand == 3
    movement = StockMovement.objects.get(product=product)
    assert (movement.delta, movement.reason, movement.note, movement.actor_label) == (
        3,
        "restock",
        "Delivery 42",
        "staff",
    )


def test_confirmed_orders_cannot_be_deleted_from_the_admin(admin_client, order):
    admin_client.post(
        reverse("admin:orders_order_changelist"), {"action": "confirm_orders", "_selected_action": [order.pk]}
    )
    response = admin_client.get(reverse("admin:orders_order_delete", args=[order.pk]))
    assert response.status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()


def test_moving_an_order_in_the_admin_marks_both_stats_days(admin_client, order):
    old_day = order.placed_at.date()
    OrderStatsDirtyDay.objects.all().delete()
    url = reverse("admin:orders_order_change", args=[order.pk])
    response = admin_client.post(url, _order_form(order, placed_at_0="2025-01-15", placed_at_1="10:00:00"))
    assert response.status_code == 302
    assert set(OrderStatsDirtyDay.objects.values_list("day", flat=True)) == {old_day, date(2025, 1, 15)}


def test_bulk_delete_in_the_admin_goes_through_the_service(admin_client, order):
    other = order_create(
        actor=Actor.system(), currency="EUR", items=[ItemInput(name="X", quantity=1, unit_price=Decimal("1.00"))]
    )
    OrderStatsDirtyDay.objects.all().delete()
    response = admin_client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "delete_selected", "_selected_action": [order.pk, other.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Order.objects.filter(pk__in=[order.pk, other.pk]).exists()
    assert set(OrderStatsDirtyDay.objects.values_list("day", flat=True)) == {order.placed_at.date()}


def test_bulk_delete_of_a_confirmed_order_is_refused_whole(admin_client, order):
    other = order_create(
        actor=Actor.system(), currency="EUR", items=[ItemInput(name="X", quantity=1, unit_price=Decimal("1.00"))]
    )
    admin_client.post(
        reverse("admin:orders_order_changelist"), {"action": "confirm_orders", "_selected_action": [order.pk]}
    )
    response = admin_client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "delete_selected", "_selected_action": [order.pk, other.pk], "post": "yes"},
    )
    assert response.status_code == 403
    assert Order.objects.filter(pk__in=[order.pk, other.pk]).count() == 2


def test_changelist_search_finds_what_the_api_search_finds(admin_client, order):
    """The admin searches like the API's `q` (through the trigram indexes on PostgreSQL): number, customer name
    and email, item SKU."""
    other = order_create(
        actor=Actor.system(),
        currency="EUR",
        customer=CustomerFactory(name="Grace Kelly", email="grace@example.com"),
        items=[ItemInput(name="Pearl necklace", sku="NK-PEARL", quantity=1, unit_price=Decimal("900.00"))],
    )
    url = reverse("admin:orders_order_changelist")

    def found(term: str) -> set[str]:
        response = admin_client.get(url, {"q": term})
        return {row.number for row in response.context["cl"].result_list}

    assert found("grace@example") == {other.number}
    assert found("NK-PEARL") == {other.number}
    assert found(order.number) == {order.number}
    assert found("Kelly") == {other.number}


def test_currency_filter_offers_the_currencies_orders_are_in(admin_client, order):
    from orders.selectors import order_currencies_in_use

    usd = order_create(
        actor=Actor.system(),
        currency="USD",
        customer=CustomerFactory(),
        items=[ItemInput(name="Watch", sku="WT-1", quantity=1, unit_price=Decimal("100.00"))],
    )
    response = admin_client.get(reverse("admin:orders_order_changelist"), {"currency__exact": "USD"})

    assert order_currencies_in_use() == ["EUR", "USD"]
    assert [row.number for row in response.context["cl"].result_list] == [usd.number]
    currency_filter = next(f for f in response.context["cl"].filter_specs if f.title == "currency")
    assert [value for value, _label in currency_filter.lookup_choices] == ["EUR", "USD"]
