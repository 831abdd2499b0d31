import io

import pytest
from django.core.management.color import no_style

from orders import demo
from orders.models import Customer, Order, OrderItem, OrderStatusHistory, Payment, Product, Shipment, StockMovement

pytestmark = pytest.mark.django_db


def _counts() -> dict:
    models = (Customer, Product, Order, OrderItem, OrderStatusHistory, Payment, Shipment, StockMovement)
    return {model.__name__: model.objects.count() for model in models}


def test_demo_seed_creates_varied_orders_and_a_rerun_adds_nothing():
    demo.seed(stdout=io.StringIO(), style=no_style())
    first = _counts()
    assert first["Order"] == demo.ORDERS
    assert first["Product"] == len(demo.PRODUCTS)
    assert Order.objects.values("status").distinct().count() == 9
    assert Order.objects.values("channel").distinct().count() >= 5
    assert first["Payment"] > 0 and first["Shipment"] > 0
    assert first["OrderStatusHistory"] > first["Order"]

    demo.seed(stdout=io.StringIO(), style=no_style())
    assert _counts() == first
