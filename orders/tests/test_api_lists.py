from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from jewelia.core.testing import assert_error
from orders.pagination import DualModePagination, OrderSearchSource
from orders.tests.factories import CustomerFactory, OrderFactory, OrderItemFactory, ProductFactory

pytestmark = pytest.mark.django_db
URL = "/api/orders/"


def _at(days: int) -> datetime:
    return datetime(2025, 3, 1, 12, 0, tzinfo=timezone.get_current_timezone()) + timedelta(days=days)


def _numbers(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["number"] for row in response.json()["results"]]


@pytest.fixture
def orders():
    ada = CustomerFactory(name="Ada Lovelace", email="ada@example.com")
    bob = CustomerFactory(name="Bob Stone", email="bob@example.com")
    ring = ProductFactory(sku="RG-1", name="Solitaire ring")
    rows = [
        OrderFactory(
            number="J-000001",
            customer=ada,
            status="pending",
            channel="in_store",
            total=Decimal("100"),
            placed_at=_at(0),
        ),
        OrderFactory(
            number="J-000002",
            customer=bob,
            status="confirmed",
            channel="online_store",
            total=Decimal("250"),
            placed_at=_at(1),
            currency="USD",
        ),
        OrderFactory(
            number="J-000003",
            customer=ada,
            status="shipped",
            channel="online_store",
            total=Decimal("75"),
            placed_at=_at(2),
            payment_status="paid",
        ),
        OrderFactory(
            number="J-000004",
            customer=None,
            status="cancelled",
            channel="phone",
            total=Decimal("900"),
            placed_at=_at(3),
            due_date=date(2025, 3, 2),
        ),
        OrderFactory(
            number="J-000005",
            customer=bob,
            status="in_production",
            channel="in_store",
            total=Decimal("900"),
            placed_at=_at(4),
            due_date=date(2000, 1, 1),
            external_reference="#1001",
        ),
    ]
    OrderItemFactory(order=rows[0], sku="RG-1", name="Solitaire ring", product=ring)
    OrderItemFactory(order=rows[2], sku="EA-7", name="Pearl earrings")
    OrderItemFactory(order=rows[4], sku="RG-1", name="Solitaire ring", product=ring)
    return rows


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["J-000005", "J-000004", "J-000003", "J-000002", "J-000001"]),
        ("?status=pending,shipped", ["J-000003", "J-000001"]),
        ("?status=pending&status=confirmed", ["J-000002", "J-000001"]),
        ("?payment_status=paid", ["J-000003"]),
        ("?channel=online_store", ["J-000003", "J-000002"]),
        ("?currency=USD", ["J-000002"]),
        ("?placed_from=2025-03-02T12:00:00Z&placed_before=2025-03-04T12:00:00Z", ["J-000003", "J-000002"]),
        ("?total_min=100&total_max=250", ["J-000002", "J-000001"]),
        ("?sku=RG-1", ["J-000005", "J-000001"]),
        ("?has_due_date=true", ["J-000005", "J-000004"]),
        ("?overdue=true", ["J-000005"]),
        ("?sort=total", ["J-000003", "J-000001", "J-000002", "J-000004", "J-000005"]),
        ("?sort=-total", ["J-000005", "J-000004", "J-000002", "J-000001", "J-000003"]),
        ("?sort=number", ["J-000001", "J-000002", "J-000003", "J-000004", "J-000005"]),
        ("?sort=status", ["J-000004", "J-000002", "J-000005", "J-000001", "J-000003"]),
    ],
)
def test_filters_and_sorts(staff_client, orders, query, expected):
    assert _numbers(staff_client.get(URL + query)) == expected


def test_filter_by_customer_and_product(staff_client, orders):
    ada = orders[0].customer
    assert _numbers(staff_client.get(f"{URL}?customer={ada.pk}")) == ["J-000003", "J-000001"]
    product = orders[0].items.get().product
    assert _numbers(staff_client.get(f"{URL}?product={product.pk}")) == ["J-000005", "J-000001"]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("000003", ["J-000003"]),
        ("#1001", ["J-000005"]),
        ("lovelace", ["J-000003", "J-000001"]),
        ("BOB@EXAMPLE", ["J-000005", "J-000002"]),
        ("ea-7", ["J-000003"]),
        ("solitaire", ["J-000005", "J-000001"]),
        ("nothing-matches", []),
    ],
)
def test_search_q(staff_client, orders, term, expected):
    assert _numbers(staff_client.get(URL, {"q": term})) == expected


@pytest.fixture
def walk_every_search(monkeypatch):
    """Make every search take the walking shape (meant for searches matching thousands of orders)."""
    monkeypatch.setattr(OrderSearchSource, "WALK_MIN_MATCHES", 0)


@pytest.mark.parametrize(
    "query",
    [
        {"q": "lovelace"},
        {"q": "solitaire", "sort": "-total"},
        {"q": "o", "sort": "number", "page_size": 2, "page": 2},
        {"q": "bob@example", "status": "confirmed,in_production"},
        {"q": "ea-7"},
        {"q": "#1001", "pagination": "cursor"},
        {"q": "e", "pagination": "cursor", "page_size": 2, "sort": "total"},
        {"q": "nothing-matches"},
    ],
)
def test_search_results_are_the_same_in_either_query_shape(staff_client, orders, monkeypatch, query):
    collecting = staff_client.get(URL, query).json()
    monkeypatch.setattr(OrderSearchSource, "WALK_MIN_MATCHES", 0)
    walking = staff_client.get(URL, query).json()
    assert walking == collecting


def test_search_counts_an_order_matching_twice_once(staff_client, orders):
    ada = orders[0].customer  # J-000001 and J-000003; J-000001 also has a "Solitaire ring" item
    ada.name = "Ada Solitaire"
    ada.save()
    body = staff_client.get(URL, {"q": "solitaire"}).json()
    assert (body["count"], body["count_is_exact"]) == (3, True)  # J-000001 (both), J-000003 (customer), J-000005
    assert [row["number"] for row in body["results"]] == ["J-000005", "J-000003", "J-000001"]


def test_search_in_cursor_mode_walks_every_match_once(staff_client, orders, walk_every_search):
    seen, url = [], URL + "?q=o&pagination=cursor&page_size=2"
    while url:
        body = staff_client.get(url).json()
        seen += [row["number"] for row in body["results"]]
        url = body["next"]
    assert seen == ["J-000005", "J-000003", "J-000002", "J-000001"]  # J-000004 has no customer nor items


def test_count_is_exact_up_to_the_limit(staff_client, orders):
    body = staff_client.get(URL).json()
    assert (body["count"], body["count_is_exact"]) == (5, True)


def test_count_past_the_limit_says_so_and_pages_still_work(staff_client, orders, monkeypatch):
    monkeypatch.setattr(DualModePagination, "count_limit", 3)
    first = staff_client.get(URL, {"page_size": 2}).json()
    assert (first["count"], first["count_is_exact"]) == (3, False)
    assert [row["number"] for row in first["results"]] == ["J-000005", "J-000004"]
    third = staff_client.get(URL, {"page_size": 2, "page": 3}).json()  # past the counted rows
    assert [row["number"] for row in third["results"]] == ["J-000001"]
    assert third["next"] is None and "page=2" in third["previous"]
    assert staff_client.get(URL, {"page_size": 2, "page": 4}).status_code == 404
    last = staff_client.get(URL, {"page_size": 2, "page": "last"})
    assert last.status_code == 404


def test_search_count_past_the_limit(staff_client, orders, monkeypatch):
    monkeypatch.setattr(DualModePagination, "count_limit", 1)
    body = staff_client.get(URL, {"q": "example"}).json()
    assert (body["count"], body["count_is_exact"]) == (1, False)
    assert len(body["results"]) == 4


def test_last_page_and_bad_page_numbers(staff_client, orders):
    assert _numbers(staff_client.get(URL, {"page_size": 2, "page": "last"})) == ["J-000001"]
    for page in ("0", "-1", "abc", "4"):
        response = staff_client.get(URL, {"page_size": 2, "page": page})
        assert_error(response, 404, "not_found")


def test_bad_filter_values_are_400s(staff_client, orders):
    for query in ("?status=lost", "?placed_from=yesterday", "?total_min=abc", "?sort=colour", "?pagination=pages"):
        response = staff_client.get(URL + query)
        assert_error(response, 400, "validation_error")


def test_page_number_mode_reports_count_and_bounds_page_size(staff_client, orders):
    body = staff_client.get(URL, {"page_size": 2, "page": 2}).json()
    assert body["count"] == 5
    assert [r["number"] for r in body["results"]] == ["J-000003", "J-000002"]
    assert "page=3" in body["next"]
    big = staff_client.get(URL, {"page_size": 100000}).json()
    assert len(big["results"]) == 5


def test_cursor_mode_walks_every_row_once_in_order(staff_client, orders):
    seen, url = [], URL + "?pagination=cursor&page_size=2&sort=-total"
    while url:
        body = staff_client.get(url).json()
        assert "count" not in body
        seen += [r["number"] for r in body["results"]]
        url = body["next"]
    # total ties (900, 900) are broken by id, descending like the sort.
    assert seen == ["J-000005", "J-000004", "J-000002", "J-000001", "J-000003"]


def test_cursor_mode_keeps_filters(staff_client, orders):
    first = staff_client.get(URL, {"pagination": "cursor", "page_size": 1, "channel": "online_store"}).json()
    second = staff_client.get(first["next"]).json()
    assert [r["number"] for r in first["results"] + second["results"]] == ["J-000003", "J-000002"]
    assert second["next"] is None


def test_cursor_for_another_sort_or_forged_is_a_400(staff_client, orders):
    first = staff_client.get(URL, {"pagination": "cursor", "page_size": 1}).json()
    response = staff_client.get(first["next"] + "&sort=total")
    assert "cursor" in assert_error(response, 400, "validation_error")["details"]["fields"]
    forged = staff_client.get(URL, {"cursor": "not-a-cursor"})
    assert assert_error(forged, 400, "validation_error")["details"]["fields"] == {"cursor": ["Invalid cursor."]}


def _make_orders(count: int):
    customer = CustomerFactory()
    for i in range(count):
        order = OrderFactory(customer=customer if i % 2 else CustomerFactory(), placed_at=_at(i))
        OrderItemFactory(order=order)
        OrderItemFactory(order=order)


@pytest.mark.parametrize("query", ["", "?pagination=cursor", "?q=ring", "?status=pending&sort=total"])
def test_list_runs_a_constant_number_of_queries(staff_client, django_assert_num_queries, query):
    _make_orders(3)
    page_mode = "cursor" not in query
    # page mode: count + orders with customers + items; cursor mode: no count.
    with django_assert_num_queries(3 if page_mode else 2):
        assert staff_client.get(URL + query).status_code == 200
    _make_orders(20)
    with django_assert_num_queries(3 if page_mode else 2):
        assert staff_client.get(URL + query).status_code == 200


def test_detail_runs_a_constant_number_of_queries(staff_client, django_assert_num_queries):
    order = OrderFactory()
    for _ in range(5):
        OrderItemFactory(order=order)
    # order + customer join, items, status history, payments, shipments
    with django_assert_num_queries(5):
        assert staff_client.get(f"{URL}{order.pk}/").status_code == 200


def test_unknown_currency_filter_is_a_400(staff_client, orders):
    response = staff_client.get(URL, {"currency": "EUR,XYZ"})
    assert assert_error(response, 400, "validation_error")["details"]["fields"] == {
        "currency": ["Not ISO 4217 currency codes: XYZ."]
    }


def test_sort_by_number_is_numeric_past_six_digits_in_both_modes(staff_client):
    """Numbers grow a seventh digit after J-999999; as text J-1000000 would sort before J-999999."""
    from orders.models import Order

    created = [OrderFactory(number=number) for number in ("J-1000000", "J-999998", "J-1000001", "J-999999")]
    Order.objects.bulk_create([Order(number="J-1000002", currency="EUR")])  # bulk writers (sync) get it too
    expected = ["J-999998", "J-999999", "J-1000000", "J-1000001", "J-1000002"]

    assert _numbers(staff_client.get(URL, {"sort": "number"})) == expected
    assert _numbers(staff_client.get(URL, {"sort": "-number"})) == expected[::-1]
    seen, url = [], f"{URL}?sort=number&pagination=cursor&page_size=2"
    while url:
        body = staff_client.get(url).json()
        seen += [row["number"] for row in body["results"]]
        url = body["next"]
    assert seen == expected
    assert created[0].number_value == 1_000_000
