from decimal import Decimal

import pytest

from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict, ValidationFailed
from orders.models import Order, OrderItem, OrderStatusHistory, Payment
from orders.services import (
    ItemInput,
    order_create,
    order_delete,
    order_numbers_allocate,
    order_totals_compute,
    order_transition,
    order_update,
)
from orders.tests.factories import CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db
STAFF = Actor("user", "7", "anna")


def _order(**kwargs):
    kwargs.setdefault("items", [ItemInput(name="Ring", quantity=2, unit_price=Decimal("150.00"))])
    return order_create(actor=STAFF, currency=kwargs.pop("currency", "EUR"), **kwargs)


def test_order_numbers_are_unique_ascending_and_formatted():
    first = order_numbers_allocate(count=3)
    second = order_numbers_allocate(count=2)
    numbers = first + second
    assert len(set(numbers)) == 5
    assert all(n.startswith("J-") and len(n) == 8 for n in numbers)
    values = [int(n[2:]) for n in numbers]
    assert values == sorted(values)


def test_totals_are_computed_from_items_discount_tax_and_shipping():
    totals = order_totals_compute(
        currency="EUR",
        items=[
            ItemInput(name="Ring", quantity=2, unit_price=Decimal("150.00")),
            ItemInput(name="Engraving", quantity=1, unit_price=Decimal("19.99")),
        ],
        discount_total=Decimal("20.00"),
        tax_total=Decimal("57.00"),
        shipping_total=Decimal("9.50"),
    )
    assert totals.line_totals == (Decimal("300.00"), Decimal("19.99"))
    assert totals.subtotal == Decimal("319.99")
    assert totals.total == Decimal("366.49")


def test_totals_refuse_more_decimals_than_the_currency_has():
    with pytest.raises(ValidationFailed) as excinfo:
        order_totals_compute(currency="JPY", items=[ItemInput(name="Ring", quantity=1, unit_price=Decimal("10.5"))])
    assert excinfo.value.details["fields"]["items"] == [{"unit_price": ["JPY amounts have at most 0 decimals."]}]


def test_totals_accept_three_decimal_currencies():
    totals = order_totals_compute(
        currency="KWD", items=[ItemInput(name="Ring", quantity=3, unit_price=Decimal("1.125"))]
    )
    assert totals.total == Decimal("3.375")


def test_totals_mismatch_names_the_computed_total():
    with pytest.raises(ValidationFailed) as excinfo:
        order_totals_compute(
            currency="EUR",
            items=[ItemInput(name="Ring", quantity=1, unit_price=Decimal("10.00"))],
            expected_total=Decimal("11.00"),
        )
    assert excinfo.value.code == "totals_mismatch"
    assert excinfo.value.details["fields"]["total"] == ["Does not match the computed total 10.00 (got 11.00)."]


def test_discount_larger_than_the_order_is_refused():
    with pytest.raises(ValidationFailed) as excinfo:
        order_totals_compute(
            currency="EUR", items=[ItemInput(name="Ring", quantity=1, unit_price=Decimal("10.00"))], discount_total=11
        )
    assert "discount_total" in excinfo.value.details["fields"]


def test_unknown_currency_is_refused():
    with pytest.raises(ValidationFailed) as excinfo:
        _order(currency="EUX")
    assert excinfo.value.details["fields"] == {"currency": ["'EUX' is not an ISO 4217 currency code."]}
    assert Order.objects.count() == 0


def test_create_captures_product_sku_and_name_and_records_history():
    product = ProductFactory(sku="RG-1", name="Solitaire ring")
    customer = CustomerFactory()
    order = _order(customer=customer, items=[ItemInput(product=product, quantity=1, unit_price=Decimal("990.00"))])
    item = order.items.get()
    assert (item.sku, item.name, item.line_total) == ("RG-1", "Solitaire ring", Decimal("990.00"))
    assert order.number.startswith("J-")
    history = OrderStatusHistory.objects.get(order=order)
    assert (history.from_status, history.to_status, history.actor_type, history.actor_label) == (
        "",
        "pending",
        "user",
        "anna",
    )


def test_transition_moves_along_the_table_and_records_who_and_why():
    order = _order()
    order_transition(order=order, to_status="confirmed", actor=STAFF, note="Deposit received")
    order.refresh_from_db()
    assert order.status == "confirmed"
    last = order.status_history.order_by("-id").first()
    assert (last.from_status, last.to_status, last.note, last.actor_id) == (
        "pending",
        "confirmed",
        "Deposit received",
        "7",
    )


def test_illegal_transition_is_a_conflict_naming_allowed_next_statuses():
    order = _order()
    with pytest.raises(Conflict) as excinfo:
        order_transition(order=order, to_status="shipped", actor=STAFF)
    assert excinfo.value.code == "invalid_transition"
    assert excinfo.value.details == {
        "from_status": "pending",
        "to_status": "shipped",
        "allowed": ["confirmed", "cancelled"],
    }
    order.refresh_from_db()
    assert order.status == "pending"
    assert order.status_history.count() == 1


def test_final_statuses_allow_no_transition():
    order = _order()
    order_transition(order=order, to_status="cancelled", actor=STAFF)
    with pytest.raises(Conflict) as excinfo:
        order_transition(order=order, to_status="pending", actor=STAFF)
    assert excinfo.value.details["allowed"] == []


def test_update_replaces_items_and_recomputes_totals():
    order = _order()
    order_update(
        order=order,
        actor=STAFF,
        data={"shipping_total": Decimal("5.00")},
        items=[ItemInput(name="Pendant", quantity=1, unit_price=Decimal("80.00"))],
    )
    order.refresh_from_db()
    assert list(order.items.values_list("name", "line_total")) == [("Pendant", Decimal("80.000"))]
    assert (order.subtotal, order.total) == (Decimal("80.000"), Decimal("85.000"))


def test_update_of_a_charge_recomputes_the_total_from_stored_items():
    order = _order()
    order_update(order=order, actor=STAFF, data={"discount_total": Decimal("50.00")})
    order.refresh_from_db()
    assert order.total == Decimal("250.000")


def test_items_cannot_change_once_production_started():
    order = _order()
    order_transition(order=order, to_status="confirmed", actor=STAFF)
    order_transition(order=order, to_status="in_production", actor=STAFF)
    with pytest.raises(Conflict):
        order_update(order=order, actor=STAFF, data={}, items=[ItemInput(name="X", quantity=1, unit_price=Decimal(1))])
    assert list(order.items.values_list("name", flat=True)) == ["Ring"]


def test_only_pending_or_cancelled_orders_can_be_deleted():
    order = _order()
    order_transition(order=order, to_status="confirmed", actor=STAFF)
    with pytest.raises(Conflict) as excinfo:
        order_delete(order=order, actor=STAFF)
    assert excinfo.value.details["deletable_statuses"] == ["pending", "cancelled"]
    order_transition(order=order, to_status="cancelled", actor=STAFF)
    order_delete(order=order, actor=STAFF)
    assert not Order.objects.exists()
    assert not OrderItem.objects.exists()


def test_orders_with_payments_are_not_deleted():
    order = _order()
    Payment.objects.create(order=order, provider="cash", amount=10, currency="EUR")
    with pytest.raises(Conflict):
        order_delete(order=order, actor=STAFF)
    assert Order.objects.filter(pk=order.pk).exists()
