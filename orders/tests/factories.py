"""factory_boy factories for the orders domain. Orders built here skip the services on purpose (fast fixtures);
tests of behaviour create orders through `order_create`."""

from decimal import Decimal

import factory
from django.utils import timezone

from orders.models import Customer, Order, OrderItem, Product


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.Sequence(lambda n: f"Gold ring {n}")
    category = "ring"
    metal = "18k yellow gold"
    price = Decimal("100.00")
    currency = "EUR"


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    number = factory.Sequence(lambda n: f"T-{n:06d}")
    customer = factory.SubFactory(CustomerFactory)
    currency = "EUR"
    placed_at = factory.LazyFunction(timezone.now)
    subtotal = Decimal("100.00")
    total = Decimal("100.00")


class OrderItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderItem

    order = factory.SubFactory(OrderFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = "Gold ring"
    quantity = 1
    unit_price = Decimal("100.00")
    line_total = Decimal("100.00")
