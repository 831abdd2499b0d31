import pytest

from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict, ValidationFailed
from orders.models import StockMovement
from orders.services import product_create, stock_adjust, stock_levels_set_bulk, stock_movements_record_bulk
from orders.tests.factories import ProductFactory

pytestmark = pytest.mark.django_db
SYNC = Actor("integration", "42", "Shopify main store")


def test_adjust_changes_stock_and_records_the_movement_with_its_actor():
    product = ProductFactory(stock_on_hand=5)
    movement = stock_adjust(product=product, delta=-2, reason="sale", actor=SYNC, note="POS sale")
    product.refresh_from_db()
    assert product.stock_on_hand == 3
    assert (movement.delta, movement.stock_after, movement.reason, movement.note) == (-2, 3, "sale", "POS sale")
    assert (movement.actor_type, movement.actor_id, movement.actor_label) == ("integration", "42", "Shopify main store")


def test_adjust_refuses_to_go_below_zero_and_changes_nothing():
    product = ProductFactory(stock_on_hand=1)
    with pytest.raises(Conflict) as excinfo:
        stock_adjust(product=product, delta=-2, reason="sale", actor=SYNC)
    assert excinfo.value.code == "insufficient_stock"
    assert excinfo.value.details["stock_on_hand"] == 1
    product.refresh_from_db()
    assert product.stock_on_hand == 1
    assert not StockMovement.objects.exists()


def test_adjust_refuses_unknown_reason():
    product = ProductFactory(stock_on_hand=1)
    with pytest.raises(ValidationFailed):
        stock_adjust(product=product, delta=1, reason="found it", actor=SYNC)


def test_bulk_levels_record_only_real_changes():
    a, b, c = ProductFactory(stock_on_hand=5), ProductFactory(stock_on_hand=2), ProductFactory(stock_on_hand=0)
    movements = stock_levels_set_bulk(levels={a.pk: 5, b.pk: 7, c.pk: 1}, reason="inventory_sync", actor=SYNC)
    assert sorted((m.product_id, m.delta, m.stock_after) for m in movements) == [(b.pk, 5, 7), (c.pk, 1, 1)]
    b.refresh_from_db()
    assert b.stock_on_hand == 7
    assert StockMovement.objects.count() == 2


def test_bulk_deltas_are_all_or_nothing():
    a, b = ProductFactory(stock_on_hand=5), ProductFactory(stock_on_hand=1)
    with pytest.raises(Conflict) as excinfo:
        stock_movements_record_bulk(deltas={a.pk: -1, b.pk: -2}, reason="sale", actor=SYNC)
    assert excinfo.value.details == {"stock_on_hand": {str(b.pk): 1}}
    a.refresh_from_db()
    assert a.stock_on_hand == 5
    assert not StockMovement.objects.exists()


def test_opening_stock_of_a_new_product_is_a_recorded_movement():
    product = product_create(
        actor=SYNC, data={"sku": "N-1", "name": "Necklace", "price": 10, "currency": "EUR"}, stock_on_hand=4
    )
    movement = StockMovement.objects.get(product=product)
    assert (movement.delta, movement.stock_after, movement.reason) == (4, 4, "restock")
