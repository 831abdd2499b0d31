"""Payments reported by a payment provider settle the CRM order they name (issue 5/6: "payments update the
order's payment status"), through the same writers sync and webhooks use."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction

from integrations.records import PaymentRecord
from integrations.sync.writers import Entry, WriteContext, records_write
from integrations.tests.fakes import FakeProvider
from orders.models import Order, PaymentStatus
from orders.services import order_create
from orders.services.orders import ItemInput
from orders.services.payments import payment_status_from

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("captured", "refunded", "authorized", "expected"),
    [
        ("100.00", "0", False, "paid"),
        ("40.00", "0", False, "partially_paid"),
        ("100.00", "30.00", False, "partially_refunded"),
        ("100.00", "100.00", False, "refunded"),
        ("0", "0", True, "authorized"),
        ("0", "0", False, "unpaid"),
    ],
)
def test_payment_status_follows_captured_and_refunded_money(captured, refunded, authorized, expected):
    status = payment_status_from(
        total=Decimal("100.00"),
        captured=Decimal(captured),
        refunded=Decimal(refunded),
        authorized=authorized,
        current=PaymentStatus.UNPAID,
    )
    assert status == expected


@pytest.fixture
def order(actor):
    return order_create(
        actor=actor, currency="USD", items=[ItemInput(quantity=1, unit_price=Decimal("250.00"), name="Ring", sku="R1")]
    )


@pytest.fixture
def write(make_integration):
    integration = make_integration()
    ctx = WriteContext.for_integration(integration, FakeProvider())

    def run(record: PaymentRecord) -> None:
        with transaction.atomic():
            records_write(ctx, [Entry(external_id=record.external_id, raw={}, records=[record])])

    return run


def payment(reference: str, *, status="captured", captured="250.00", refunded="0", at=T0) -> PaymentRecord:
    return PaymentRecord(
        external_id="pi_1",
        source_updated_at=at,
        provider="stripe",
        amount=Decimal("250.00"),
        currency="USD",
        status=status,
        captured_amount=Decimal(captured),
        refunded_amount=Decimal(refunded),
        order_reference=reference,
    )


def test_a_captured_payment_naming_the_order_number_marks_it_paid_then_refunded(order, write):
    write(payment(order.number))
    assert Order.objects.get(pk=order.pk).payment_status == "paid"

    write(payment(order.number, status="refunded", refunded="250.00", at=T0.replace(hour=5)))
    assert Order.objects.get(pk=order.pk).payment_status == "refunded"


def test_a_payment_naming_the_sources_own_order_number_links_through_external_reference(order, write):
    Order.objects.filter(pk=order.pk).update(external_reference="#1001")

    write(payment("#1001", captured="100.00"))

    assert Order.objects.get(pk=order.pk).payment_status == "partially_paid"
    assert order.payments.get().external_id == "pi_1"


def test_a_failed_attempt_leaves_the_orders_status_alone(order, write):
    Order.objects.filter(pk=order.pk).update(payment_status="paid")

    write(payment(order.number, status="failed", captured="0"))

    assert Order.objects.get(pk=order.pk).payment_status == "paid"
