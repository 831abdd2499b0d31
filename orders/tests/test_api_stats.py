"""Stats against figures computed by hand from seven orders (two outside the range), aggregated live (no rollups
yet) and read from the rollups."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from jewelia.core.testing import assert_error
from orders.services import order_stats_rebuild
from orders.tests.factories import CustomerFactory, OrderFactory, OrderItemFactory

pytestmark = pytest.mark.django_db
URL = "/api/orders/stats/"
RANGE = {"date_from": "2025-03-01", "date_to": "2025-03-10"}


def _at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=timezone.get_current_timezone())


def _order(customer, currency, total, status, payment_status, channel, placed_at, sku, quantity):
    order = OrderFactory(
        customer=customer,
        currency=currency,
        subtotal=Decimal(total),
        total=Decimal(total),
        status=status,
        payment_status=payment_status,
        channel=channel,
        placed_at=placed_at,
    )
    OrderItemFactory(
        order=order,
        sku=sku,
        name=sku or "Custom piece",
        quantity=quantity,
        unit_price=Decimal(total) / quantity,
        line_total=Decimal(total),
    )
    return order


@pytest.fixture(params=["live", "rollups"])
def dataset(request):
    ada = CustomerFactory(name="Ada", email="ada@example.com")
    bob = CustomerFactory(name="Bob", email="bob@example.com")
    _order(ada, "EUR", "100.00", "completed", "paid", "in_store", _at(1, 10), "RG-1", 1)
    _order(ada, "EUR", "250.50", "confirmed", "partially_paid", "online_store", _at(1, 15), "NK-2", 2)
    _order(bob, "EUR", "80.00", "cancelled", "voided", "in_store", _at(3), "RG-1", 1)
    _order(bob, "USD", "300.00", "shipped", "paid", "online_store", _at(3), "RG-1", 3)
    _order(None, "EUR", "40.00", "pending", "unpaid", "phone", _at(10, 23, 59), "", 1)
    _order(ada, "EUR", "999.00", "completed", "paid", "in_store", _at(11, 0, 0), "RG-1", 1)  # after the range
    _order(
        ada,
        "EUR",
        "999.00",
        "completed",
        "paid",
        "in_store",
        datetime(2025, 2, 28, 23, 59, tzinfo=UTC),
        "RG-1",
        1,
    )
    if request.param == "rollups":
        order_stats_rebuild()


def _stats(client, **params):
    response = client.get(URL, {**RANGE, **params})
    assert response.status_code == 200, response.json()
    return response.json()


def test_totals_revenue_and_average_order_value_per_currency(staff_client, dataset):
    body = _stats(staff_client)
    assert (body["orders"], body["currencies"], body["interval"]) == (5, ["EUR", "USD"], "day")
    assert body["revenue"] == [
        {"currency": "EUR", "amount": "390.50", "orders": 3, "average_order_value": "130.17"},
        {"currency": "USD", "amount": "300.00", "orders": 1, "average_order_value": "300.00"},
    ]


def test_count_and_amounts_by_status_include_every_status(staff_client, dataset):
    by_status = {row["status"]: row for row in _stats(staff_client)["by_status"]}
    assert len(by_status) == 9
    assert by_status["completed"] == {
        "status": "completed",
        "orders": 1,
        "amounts": [{"currency": "EUR", "amount": "100.00"}, {"currency": "USD", "amount": "0.00"}],
    }
    assert by_status["cancelled"]["amounts"][0] == {"currency": "EUR", "amount": "80.00"}
    assert by_status["shipped"]["amounts"][1] == {"currency": "USD", "amount": "300.00"}
    assert by_status["refunded"]["orders"] == 0


def test_payment_status_breakdown(staff_client, dataset):
    rows = {row["payment_status"]: (row["orders"], row["amounts"]) for row in _stats(staff_client)["payment_status"]}
    assert rows["paid"] == (2, [{"currency": "EUR", "amount": "100.00"}, {"currency": "USD", "amount": "300.00"}])
    assert rows["unpaid"][0] == rows["partially_paid"][0] == rows["voided"][0] == 1
    assert rows["refunded"][0] == 0


def test_daily_timeline_fills_gaps(staff_client, dataset):
    timeline = _stats(staff_client)["timeline"]
    assert [row["period"] for row in timeline] == [f"2025-03-{day:02d}" for day in range(1, 11)]
    by_day = {row["period"]: row for row in timeline}
    assert by_day["2025-03-01"]["orders"] == 2
    assert by_day["2025-03-01"]["revenue"] == [
        {"currency": "EUR", "amount": "350.50", "orders": 2},
        {"currency": "USD", "amount": "0.00", "orders": 0},
    ]
    # The cancelled EUR order counts as placed but not as revenue.
    assert by_day["2025-03-03"]["orders"] == 2
    assert by_day["2025-03-03"]["revenue"][0] == {"currency": "EUR", "amount": "0.00", "orders": 0}
    assert by_day["2025-03-02"] == {
        "period": "2025-03-02",
        "orders": 0,
        "revenue": [
            {"currency": "EUR", "amount": "0.00", "orders": 0},
            {"currency": "USD", "amount": "0.00", "orders": 0},
        ],
    }
    assert by_day["2025-03-10"]["revenue"][0]["amount"] == "40.00"


def test_weekly_timeline_starts_on_mondays(staff_client, dataset):
    timeline = _stats(staff_client, interval="week")["timeline"]
    assert [(row["period"], row["orders"], row["revenue"][0]["amount"]) for row in timeline] == [
        ("2025-02-24", 2, "350.50"),
        ("2025-03-03", 2, "0.00"),
        ("2025-03-10", 1, "40.00"),
    ]


def test_monthly_timeline(staff_client, dataset):
    timeline = _stats(staff_client, interval="month")["timeline"]
    assert [(row["period"], row["orders"]) for row in timeline] == [("2025-03-01", 5)]


def test_top_customers_are_ranked_within_each_currency(staff_client, dataset):
    top = _stats(staff_client)["top_customers"]
    assert [(row["currency"], row["customer"]["name"], row["orders"], row["revenue"]) for row in top] == [
        ("EUR", "Ada", 2, "350.50"),
        ("USD", "Bob", 1, "300.00"),
    ]


def test_top_products_by_sku_within_each_currency(staff_client, dataset):
    top = _stats(staff_client)["top_products"]
    assert [(row["currency"], row["sku"], row["quantity"], row["revenue"]) for row in top] == [
        ("EUR", "NK-2", 2, "250.50"),
        ("EUR", "RG-1", 1, "100.00"),
        ("USD", "RG-1", 3, "300.00"),
    ]


def test_channel_filter(staff_client, dataset):
    body = _stats(staff_client, channel="online_store")
    assert body["orders"] == 2
    assert [(row["currency"], row["amount"]) for row in body["revenue"]] == [("EUR", "250.50"), ("USD", "300.00")]


def test_stats_use_a_constant_number_of_queries(staff_client, dataset, django_assert_num_queries):
    from django.db import connection

    # the range's rolled-up and dirty days, the status breakdown, the timeline, top customers (with their names),
    # top products and their names, the savepoint pair of the stats transaction (the test runs inside one), and on
    # PostgreSQL its transaction settings.
    expected = 8 if connection.vendor == "sqlite" else 9
    with django_assert_num_queries(expected):
        _stats(staff_client)


def test_default_range_is_the_last_30_days_by_day(staff_client):
    today = timezone.localdate()
    OrderFactory(placed_at=timezone.now())
    OrderFactory(placed_at=timezone.now() - timedelta(days=30))  # the day before the range
    body = _stats_of(staff_client)
    assert (body["date_from"], body["date_to"], body["interval"]) == (
        (today - timedelta(days=29)).isoformat(),
        today.isoformat(),
        "day",
    )
    assert (len(body["timeline"]), body["orders"]) == (30, 1)


@pytest.mark.parametrize(("date_from", "interval"), [("2024-12-31", "day"), ("2024-12-30", "month")])  # 92, 93 days
def test_default_interval_is_day_up_to_92_days_else_month(staff_client, date_from, interval):
    assert _stats_of(staff_client, date_from=date_from, date_to="2025-04-01")["interval"] == interval


def _stats_of(client, **params):
    response = client.get(URL, params)
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.mark.parametrize(
    "params",
    [
        {"date_from": "2025-03-10", "date_to": "2025-03-01"},
        {"date_from": "03/01/2025"},
        {"interval": "hour"},
        {"channel": "carrier-pigeon"},
        {"date_from": "2015-01-01", "date_to": "2025-01-01"},
        {"colour": "red"},
    ],
)
def test_bad_stats_parameters_are_400s(staff_client, params):
    response = staff_client.get(URL, params)
    assert_error(response, 400, "validation_error")
