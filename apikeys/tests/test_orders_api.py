"""An API key against the orders API: scopes apply, and the key is recorded as the actor of what it changes."""

from decimal import Decimal

import pytest

from jewelia.core.actors import Actor
from jewelia.core.testing import assert_error
from orders.services import ItemInput, order_create

from .conftest import key_client
from .factories import create_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def order():
    return order_create(
        actor=Actor.system(), currency="EUR", items=[ItemInput(name="Ring", quantity=1, unit_price=Decimal("100.00"))]
    )


def test_key_with_orders_read_lists_orders(order):
    _, raw = create_key(scopes=["orders:read"])
    response = key_client(raw).get("/api/orders/")
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [order.pk]


def test_key_without_orders_write_cannot_move_an_order(order):
    _, raw = create_key(scopes=["orders:read"])
    response = key_client(raw).post(f"/api/orders/{order.pk}/transition/", {"to_status": "confirmed"}, format="json")
    error = assert_error(response, 403, "permission_denied")
    assert error["details"] == {"missing_scope": "orders:write"}


def test_order_status_history_records_the_key_as_the_actor(order):
    key, raw = create_key(name="POS terminal", scopes=["orders:read", "orders:write"])
    response = key_client(raw).post(f"/api/orders/{order.pk}/transition/", {"to_status": "confirmed"}, format="json")
    assert response.status_code == 200
    change = order.status_history.order_by("created_at", "id").last()
    assert (change.actor_type, change.actor_id, change.actor_label) == ("api_key", str(key.pk), "POS terminal")
