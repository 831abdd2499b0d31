import pytest
from django.db import IntegrityError, transaction

from orders.models import Customer, Payment, Product

pytestmark = pytest.mark.django_db


def test_customer_email_is_unique_ignoring_case():
    Customer.objects.create(name="Ada", email="ada@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(name="Ada again", email="ADA@Example.com")


def test_customers_without_email_do_not_collide():
    Customer.objects.create(name="Walk-in one")
    Customer.objects.create(name="Walk-in two")
    assert Customer.objects.filter(email="").count() == 2


def test_product_stock_cannot_go_negative_in_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(sku="R-1", name="Ring", price=10, currency="EUR", stock_on_hand=-1)


def test_payment_external_id_is_unique_per_provider_only_when_present():
    Payment.objects.create(provider="stripe", external_id="ch_1", amount=1, currency="EUR")
    Payment.objects.create(provider="square", external_id="ch_1", amount=1, currency="EUR")
    Payment.objects.create(provider="cash", amount=1, currency="EUR")
    Payment.objects.create(provider="cash", amount=1, currency="EUR")
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(provider="stripe", external_id="ch_1", amount=2, currency="EUR")
