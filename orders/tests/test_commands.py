from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command

from orders.models import OrderStatsDailyTotal, OrderStatsDay
from orders.tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def test_orders_stats_rebuild_rolls_up_every_day_of_orders():
    OrderFactory(placed_at=datetime(2025, 3, 1, 12, tzinfo=UTC))
    OrderFactory(placed_at=datetime(2025, 3, 3, 12, tzinfo=UTC), status="completed")
    out = StringIO()
    call_command("orders_stats_rebuild", stdout=out)
    assert out.getvalue().startswith("Stats rollups rebuilt: 3 day(s)")
    assert OrderStatsDay.objects.count() == 3
    assert sorted(OrderStatsDailyTotal.objects.values_list("status", "orders")) == [("completed", 1), ("pending", 1)]
