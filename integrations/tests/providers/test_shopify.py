"""Shopify provider: the shared contract, then its own edge cases against the sandbox and the sheet's payloads."""

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from integrations.errors import AuthError, BadRecordError, RateLimitedError, TransientError
from integrations.http import RetryPolicy, http_overrides
from integrations.providers.registry import get_provider
from integrations.providers.shopify import mappers
from integrations.providers.shopify.client import call_limit_hint
from integrations.records import (
    CustomerRecord,
    InventoryRecord,
    OrderItemRecord,
    OrderRecord,
    PaymentRecord,
    ProductRecord,
)
from integrations.sandbox.shopify import ORDER_BASE_ID
from integrations.sandbox.testing import sandbox_connection
from integrations.tests.providers.contract import ProviderContract, read_all

FIXTURES = Path(__file__).parent / "fixtures" / "shopify"
EDT = timezone(timedelta(hours=-4))
EST = timezone(timedelta(hours=-5))
SHOPIFY = get_provider("shopify")


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def connect(sandbox, credentials=None, *, rate_limiting=False, **config):
    credentials = sandbox.credentials() if credentials is None else credentials
    return sandbox_connection(
        SHOPIFY, config=sandbox.config(**config), credentials=credentials, rate_limiting=rate_limiting
    )


def transform(resource, raw):
    return SHOPIFY.transform(resource, raw, None)


class TestShopifyContract(ProviderContract):
    @pytest.fixture
    def provider(self):
        return SHOPIFY

    @pytest.fixture
    def connection(self, shopify_sandbox, fake_time):
        return connect(shopify_sandbox, page_size=7)

    @pytest.fixture
    def rejected_connection(self, shopify_sandbox, fake_time):
        return connect(shopify_sandbox, {"access_token": "shpat_revoked_token_0000"})

    @pytest.fixture
    def bad_records(self):
        return {
            "customers": {"id": 5, "updated_at": "last tuesday"},
            "products": {"id": 6, "_shop_currency": "USD", "variants": [{"id": 1, "sku": "X", "price": "free"}]},
            "inventory": {
                "inventory_item_id": 7,
                "variant_id": 8,
                "sku": "X",
                "inventory_levels": [{"available": "lots"}],
            },
            "orders": {"id": 9, "currency": "USD", "total_price": "four hundred", "financial_status": "paid"},
        }


# --- transforms: the sheet's payloads, exact values ----------------------------------------------------------------
# The sheet's order example (`fixtures/shopify/order_created.json`; the orders/create webhook fixture is the same
# order), as the mapper must read it. test_shopify_webhooks.py expects the same record from the order topics.
ORDER_1001 = OrderRecord(
    external_id="450789469",
    source_updated_at=datetime(2026, 5, 1, 6, 15, 30, tzinfo=EDT),
    external_number="#1001",
    currency="USD",
    placed_at=datetime(2026, 5, 1, 6, 15, 29, tzinfo=EDT),
    channel="online_store",
    status="confirmed",
    payment_status="paid",
    fulfillment_status="unfulfilled",
    items=[
        OrderItemRecord(
            sku="RING-18K-SOL-6",
            name="18k Solitaire Ring - Size 6",
            quantity=1,
            unit_price=Decimal("398.00"),
            external_id="466157049",
            attributes={"variant": "Size 6"},
        )
    ],
    subtotal=Decimal("398.00"),
    discount_total=Decimal("0"),
    tax_total=Decimal("11.94"),
    shipping_total=Decimal("0"),
    total=Decimal("409.94"),
    customer=CustomerRecord(
        external_id="207119551", source_updated_at=None, name="Bob Norman", email="bob.norman@mail.example.com"
    ),
    notes="",
    payments=[
        PaymentRecord(
            external_id="order-450789469",
            source_updated_at=datetime(2026, 5, 1, 6, 15, 30, tzinfo=EDT),
            provider="shopify",
            amount=Decimal("409.94"),
            currency="USD",
            status="captured",
            captured_amount=Decimal("409.94"),
            refunded_amount=Decimal("0"),
            order_reference="450789469",
            customer_external_id="207119551",
        )
    ],
)


def test_the_sheets_order_example_maps_to_an_exact_order_record():
    [order] = transform("orders", fixture("order_created.json"))

    assert order == ORDER_1001
    assert str(order.total) == "409.94"  # the decimal string, never through a float


def test_the_sheets_customer_list_example_maps_to_exact_customer_records():
    bob, ada = fixture("customers_list.json")["customers"]

    assert transform("customers", bob) == [
        CustomerRecord(
            external_id="207119551",
            source_updated_at=datetime(2026, 4, 30, 9, 0, tzinfo=EDT),
            name="Bob Norman",
            email="bob.norman@mail.example.com",
            phone="+16135551111",
            addresses=[
                {
                    "kind": "shipping",
                    "line1": "Chestnut Street 92",
                    "line2": "",
                    "city": "Louisville",
                    "region": "",
                    "postal_code": "40202",
                    "country": "United States",
                }
            ],
            tags=["vip"],
        )
    ]
    assert transform("customers", ada) == [
        CustomerRecord(
            external_id="207119552",
            source_updated_at=datetime(2026, 4, 29, 12, 0, tzinfo=EDT),
            name="Ada Lovelace",
            email="ada@example.com",
        )
    ]


def test_a_partially_refunded_fulfilled_closed_order_maps_refunds_discounts_and_shipping():
    [order] = transform("orders", fixture("order_partially_refunded.json"))

    assert (order.status, order.payment_status, order.fulfillment_status) == (
        "completed",
        "partially_refunded",
        "fulfilled",
    )
    assert order.placed_at == datetime(2026, 5, 2, 10, 0, 5, tzinfo=EDT)  # processed_at wins over created_at
    assert (order.subtotal, order.discount_total, order.tax_total, order.shipping_total, order.total) == (
        Decimal("1290.00"),
        Decimal("129.00"),
        Decimal("34.83"),
        Decimal("15.00"),
        Decimal("1210.83"),
    )
    assert order.items == [
        OrderItemRecord(
            sku="RING-PT-ETB-7",
            name="Platinum Eternity Band - Size 7",
            quantity=1,
            unit_price=Decimal("1250.00"),
            external_id="466157050",
            attributes={"variant": "Size 7", "Engraving": "A & L"},  # the "_"-prefixed property stays private
        ),
        OrderItemRecord(
            sku="shopify-variant-39072946",
            name="Polishing Cloth",
            quantity=2,
            unit_price=Decimal("20.00"),
            external_id="466157051",
        ),
    ]
    assert order.payments == [
        PaymentRecord(
            external_id="order-450789470",
            source_updated_at=datetime(2026, 5, 9, 15, 30, tzinfo=EDT),
            provider="shopify",
            amount=Decimal("1210.83"),
            currency="USD",
            status="partially_refunded",
            method="shopify_payments",
            captured_amount=Decimal("1210.83"),
            refunded_amount=Decimal("18.54"),  # the failed refund transaction is not counted
            order_reference="450789470",
            customer_external_id="207119552",
        )
    ]
    assert order.customer.source_updated_at == datetime(2026, 4, 29, 12, 0, tzinfo=EDT)
    assert order.notes == "Gift wrap, please"


def test_a_product_gives_one_record_per_variant_with_metal_from_options_and_gemstone_from_tags():
    product = {**fixture("product.json"), "_shop_currency": "EUR"}

    assert transform("products", product) == [
        ProductRecord(
            external_id="39072856",
            source_updated_at=datetime(2026, 4, 20, 11, 0, tzinfo=EDT),
            sku="RING-18K-SOL-6",
            name="18k Solitaire Ring - 6 / 18k Yellow Gold",
            price=Decimal("398.00"),
            currency="EUR",
            category="ring",
            metal="18k Yellow Gold",
            gemstone="Diamond 0.5ct",
        ),
        ProductRecord(
            external_id="39072857",
            source_updated_at=datetime(2026, 4, 25, 8, 30, tzinfo=EDT),  # the variant changed after the product
            sku="shopify-variant-39072857",  # no SKU in Shopify: a stand-in that order lines share
            name="18k Solitaire Ring - 7 / Platinum",
            price=Decimal("1450.00"),
            currency="EUR",
            category="ring",
            metal="Platinum",
            gemstone="Diamond 0.5ct",
        ),
    ]


def test_an_archived_product_maps_to_inactive_records():
    product = {**fixture("product.json"), "_shop_currency": "USD", "status": "archived"}

    assert [record.active for record in transform("products", product)] == [False, False]


def test_inventory_sums_available_over_locations_and_floors_oversold_stock_at_zero():
    raw = {
        "inventory_item_id": 808950810,
        "sku": "RING-18K-SOL-6",
        "variant_id": 39072856,
        "inventory_levels": [
            {"location_id": 1, "available": 3, "updated_at": "2026-05-01T10:00:00-04:00"},
            {"location_id": 2, "available": 4, "updated_at": "2026-05-02T10:00:00-04:00"},
            {"location_id": 3, "available": None, "updated_at": None},
        ],
    }
    oversold = {**raw, "inventory_levels": [{"location_id": 1, "available": -2, "updated_at": None}]}

    assert transform("inventory", raw) == [
        InventoryRecord(
            external_id="808950810",
            source_updated_at=datetime(2026, 5, 2, 10, 0, tzinfo=EDT),
            sku="RING-18K-SOL-6",
            quantity=7,
        )
    ]
    assert transform("inventory", oversold)[0].quantity == 0


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"cancelled_at": "2026-05-01T08:00:00-04:00", "financial_status": "voided"}, ("cancelled", "voided")),
        ({"financial_status": "refunded"}, ("refunded", "refunded")),
        ({"fulfillment_status": "fulfilled"}, ("shipped", "paid")),
        ({"fulfillment_status": "fulfilled", "closed_at": "2026-05-03T08:00:00-04:00"}, ("completed", "paid")),
        ({"financial_status": "pending"}, ("pending", "unpaid")),
        ({"financial_status": "authorized"}, ("confirmed", "authorized")),
        ({"financial_status": "partially_paid", "fulfillment_status": "partial"}, ("confirmed", "partially_paid")),
    ],
)
def test_order_status_and_payment_status_follow_the_documented_mapping(changes, expected):
    [order] = transform("orders", {**fixture("order_created.json"), **changes})

    assert (order.status, order.payment_status) == expected


def test_a_refund_transaction_covering_the_total_makes_a_paid_order_refunded():
    refund = {"transactions": [{"kind": "refund", "status": "success", "amount": "409.94"}]}
    [order] = transform("orders", {**fixture("order_created.json"), "refunds": [refund]})

    assert (order.status, order.payment_status, order.payments[0].status) == ("refunded", "refunded", "refunded")


def test_point_of_sale_orders_map_to_the_pos_channel():
    [order] = transform("orders", {**fixture("order_created.json"), "source_name": "pos"})

    assert order.channel == "pos"


def test_test_orders_are_skipped():
    assert transform("orders", {**fixture("order_created.json"), "test": True}) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"total_price": "four hundred"}, "total_price"),
        ({"financial_status": "expired"}, "financial_status"),
        ({"fulfillment_status": "in_transit"}, "fulfillment_status"),
        ({"updated_at": "2026-05-01T06:15:30"}, "offset"),
        ({"currency": "dollars"}, "ISO 4217"),
        ({"line_items": [{"id": 1, "quantity": 0, "price": "1.00"}]}, "quantity"),
    ],
)
def test_an_order_that_cannot_be_understood_is_a_bad_record_naming_the_problem(changes, reason):
    raw = {**fixture("order_created.json"), **changes}

    with pytest.raises(BadRecordError) as caught:
        transform("orders", raw)

    assert caught.value.external_id == "450789469"
    assert reason in caught.value.message
    assert caught.value.payload is raw


def test_every_status_the_mappers_produce_is_a_choice_of_the_orders_domain():
    from orders.models import (
        Channel,
        FulfillmentStatus,
        OrderStatus,
        PaymentRecordStatus,
        PaymentStatus,
        ProductCategory,
    )

    assert set(mappers.PAYMENT_STATUS.values()) <= set(PaymentStatus.values)
    assert set(mappers.PAYMENT_RECORD_STATUS.values()) <= set(PaymentRecordStatus.values)
    assert set(mappers.FULFILLMENT_STATUS.values()) <= set(FulfillmentStatus.values)
    assert set(mappers.CATEGORIES.values()) | {"other"} <= set(ProductCategory.values)
    assert {"pending", "confirmed", "shipped", "completed", "cancelled", "refunded"} <= set(OrderStatus.values)
    assert {"online_store", "pos"} <= set(Channel.values)


# --- reading through the sandbox -------------------------------------------------------------------------------------
def test_the_first_orders_page_asks_for_every_status_and_250_a_page(shopify_sandbox, fake_time):
    page = SHOPIFY.fetch_page(connect(shopify_sandbox), "orders", cursor={}, since=None)

    [request] = shopify_sandbox.requests_to(r"/orders\.json$")
    assert request.query == {"status": ["any"], "limit": ["250"]}
    assert len(page.records) == 30  # closed and cancelled included: the default `open` would drop them
    assert page.done and page.cursor == {}


def test_an_incremental_read_sends_updated_at_min_with_its_offset(shopify_sandbox, fake_time):
    since = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)  # 10:00 in the shop's -05:00

    page = SHOPIFY.fetch_page(connect(shopify_sandbox), "orders", cursor={}, since=since)

    assert shopify_sandbox.requests_to(r"/orders\.json$")[0].query["updated_at_min"] == ["2025-01-06T15:00:00+00:00"]
    assert [o["updated_at"] for o in page.records][:3] == [
        "2025-01-06T10:00:00-05:00",
        "2025-01-06T10:00:00-05:00",
        "2025-01-06T10:05:00-05:00",
    ]


def test_following_pages_send_only_limit_and_page_info_never_the_filters(shopify_sandbox, fake_time):
    connection = connect(shopify_sandbox, page_size=7)

    pages = read_all(SHOPIFY, connection, "orders")

    requests = shopify_sandbox.requests_to(r"/orders\.json$")
    assert len(pages) == len(requests) == 5
    assert set(requests[0].query) == {"status", "limit"}
    assert all(set(r.query) == {"limit", "page_info"} for r in requests[1:])
    assert all(r.fault == "" and r.method == "GET" for r in requests)
    assert sum(len(p.records) for p in pages) == 30


def test_a_crashed_run_resumes_from_the_saved_next_url_exactly(shopify_sandbox, fake_time):
    first = SHOPIFY.fetch_page(connect(shopify_sandbox, page_size=7), "orders", cursor={}, since=None)
    saved = json.loads(json.dumps(first.cursor))  # what the engine stored before the worker died

    resumed = SHOPIFY.fetch_page(connect(shopify_sandbox, page_size=7), "orders", cursor=saved, since=None)

    request = shopify_sandbox.requests_to(r"/orders\.json$")[-1]
    assert f"{request.base_url}{request.path}?{request.raw_query}" == saved["next_url"]
    assert [o["id"] for o in resumed.records] == list(range(ORDER_BASE_ID + 7, ORDER_BASE_ID + 14))
    assert resumed.cursor["started_at"] == saved["started_at"]  # the run's start survives the crash


def test_an_incremental_run_after_a_change_reads_only_the_changed_and_newest_orders(shopify_sandbox, fake_time):
    connection = connect(shopify_sandbox)
    watermark = SHOPIFY.fetch_page(connection, "orders", cursor={}, since=None).high_watermark
    changed = shopify_sandbox.update_order(ORDER_BASE_ID + 4, note="Resize to 7")

    page = SHOPIFY.fetch_page(connection, "orders", cursor={}, since=watermark)

    assert watermark == datetime(2025, 1, 6, 11, 10, tzinfo=EST)  # orders 29 and 30 share this timestamp
    assert [o["id"] for o in page.records] == [ORDER_BASE_ID + 4, ORDER_BASE_ID + 28, ORDER_BASE_ID + 29]
    assert page.records[0]["note"] == "Resize to 7"
    assert page.high_watermark == datetime.fromisoformat(changed["updated_at"])


def test_the_high_watermark_never_passes_the_moment_the_run_started(shopify_sandbox, fake_time):
    shopify_sandbox.update_order(ORDER_BASE_ID, touch=datetime(2099, 1, 1, tzinfo=UTC))  # a clock far ahead
    before = datetime.now(UTC).replace(microsecond=0)

    page = SHOPIFY.fetch_page(connect(shopify_sandbox, page_size=7), "orders", cursor={}, since=None)

    started = datetime.fromisoformat(page.cursor["started_at"])
    assert before - timedelta(seconds=1) <= started <= datetime.now(UTC)
    assert page.high_watermark == started


def test_products_carry_the_shops_currency_read_once_per_run(make_shopify_sandbox, fake_time):
    sandbox = make_shopify_sandbox(currency="EUR")
    connection = connect(sandbox, page_size=3)

    pages = read_all(SHOPIFY, connection, "products")

    records = [r for p in pages for raw in p.records for r in SHOPIFY.transform("products", raw, connection)]
    assert len(pages) == 4 and len(records) == 17
    assert {r.currency for r in records} == {"EUR"}
    assert len(sandbox.requests_to(r"/shop\.json$")) == 1


def test_inventory_reads_every_variants_levels_fifty_item_ids_a_request(make_shopify_sandbox, fake_time):
    sandbox = make_shopify_sandbox(products=30)
    item = sandbox.inventory_items()[0]["inventory_item_id"]
    sandbox.set_inventory_level(item, 655441491, 5)
    sandbox.set_inventory_level(item, 905684977, 4)
    connection = connect(sandbox)

    [page] = read_all(SHOPIFY, connection, "inventory")

    level_requests = sandbox.requests_to(r"/inventory_levels\.json$")
    assert [len(r.param("inventory_item_ids").split(",")) for r in level_requests] == [50, 1]
    assert len(page.records) == 51
    records = {r.external_id: r for raw in page.records for r in SHOPIFY.transform("inventory", raw, connection)}
    assert records[str(item)].quantity == 9
    for variant in sandbox.inventory_items():
        expected = sum(level["available"] for level in sandbox.levels_for(variant["inventory_item_id"]))
        assert records[str(variant["inventory_item_id"])].quantity == expected


def test_fetch_record_rereads_one_record_and_returns_none_once_it_is_gone(shopify_sandbox, fake_time):
    connection = connect(shopify_sandbox)
    shopify_sandbox.delete("orders", ORDER_BASE_ID + 1)

    assert SHOPIFY.fetch_record(connection, "orders", str(ORDER_BASE_ID)) == shopify_sandbox.order(ORDER_BASE_ID)
    assert SHOPIFY.fetch_record(connection, "orders", str(ORDER_BASE_ID + 1)) is None
    assert SHOPIFY.fetch_record(connection, "products", "632910392")["_shop_currency"] == "USD"


def test_a_malformed_record_in_the_store_fails_alone(shopify_sandbox, fake_time):
    shopify_sandbox.make_malformed("orders", ORDER_BASE_ID + 2)
    connection = connect(shopify_sandbox)

    page = SHOPIFY.fetch_page(connection, "orders", cursor={}, since=None)

    failures, records = [], []
    for raw in page.records:
        try:
            records += SHOPIFY.transform("orders", raw, connection)
        except BadRecordError as exc:
            failures.append(exc.external_id)
    assert failures == [str(ORDER_BASE_ID + 2)] and len(records) == 29


# --- rate limits, retries, auth -------------------------------------------------------------------------------------
def test_a_429_waits_its_retry_after_then_succeeds(shopify_sandbox, fake_time):
    shopify_sandbox.rate_limit_next(2, retry_after="2.5")

    page = SHOPIFY.fetch_page(connect(shopify_sandbox, rate_limiting=True), "customers", cursor={}, since=None)

    assert len(page.records) == 12
    assert fake_time.sleeps == [2.5, 2.5]


def test_the_shops_leaky_bucket_429_is_waited_out_for_exactly_its_retry_after(make_shopify_sandbox, fake_time):
    sandbox = make_shopify_sandbox(bucket_size=3, leak_rate=1.0, clock=fake_time.monotonic)
    connection = connect(sandbox, page_size=1)  # no client-side limiter: the shop's own bucket says no

    cursor: dict = {}
    for _ in range(4):
        cursor = SHOPIFY.fetch_page(connection, "customers", cursor=cursor, since=None).cursor

    assert [r.status for r in sandbox.requests] == [200, 200, 200, 429, 200]
    assert fake_time.sleeps == [1.0]


def test_a_429_asking_for_longer_than_the_in_process_budget_is_handed_back_with_retry_after(shopify_sandbox, fake_time):
    shopify_sandbox.rate_limit_next(1, retry_after="120")

    with pytest.raises(RateLimitedError) as caught:
        SHOPIFY.fetch_page(connect(shopify_sandbox), "orders", cursor={}, since=None)

    assert caught.value.retry_after == 120.0
    assert fake_time.sleeps == []


def test_a_nearly_full_call_limit_bucket_slows_the_next_call_before_any_429(shopify_sandbox, fake_time):
    shopify_sandbox.fill_bucket(35)  # other callers already used 35 of 40
    connection = connect(shopify_sandbox, rate_limiting=True, page_size=7)

    first = SHOPIFY.fetch_page(connection, "customers", cursor={}, since=None)
    SHOPIFY.fetch_page(connection, "customers", cursor=first.cursor, since=None)

    assert fake_time.sleeps == [2.5]  # 36/40 -> leak back under 32 at 2/s before calling again
    assert all(r.fault == "" for r in shopify_sandbox.requests)


def test_call_limit_hint_reads_the_header():
    class Response:
        def __init__(self, value):
            self.headers = {"X-Shopify-Shop-Api-Call-Limit": value} if value else {}

    assert [call_limit_hint(Response(v)) for v in ("1/40", "31/40", "32/40", "40/40", "72/80", "junk", None)] == [
        None,
        None,
        0.5,
        4.5,
        4.5,
        None,
        None,
    ]


def test_5xx_answers_are_retried_with_exponential_backoff(shopify_sandbox, fake_time):
    shopify_sandbox.fail_next(2, status=503)

    page = SHOPIFY.fetch_page(connect(shopify_sandbox), "customers", cursor={}, since=None)

    assert len(page.records) == 12
    assert fake_time.sleeps == [0.25, 0.5]  # full jitter at half of 0.5 s, then of 1 s


def test_persistent_5xx_raises_a_transient_error_after_the_last_attempt(shopify_sandbox, fake_time):
    shopify_sandbox.fail_next(10, status=500)

    with pytest.raises(TransientError) as caught:
        SHOPIFY.fetch_page(connect(shopify_sandbox), "customers", cursor={}, since=None)

    assert (caught.value.status, caught.value.retry_after) == (500, 2.0)
    assert fake_time.sleeps == [0.25, 0.5, 1.0]
    assert len(shopify_sandbox.requests) == 4


def test_a_malformed_body_is_retried_and_then_read(shopify_sandbox, fake_time):
    shopify_sandbox.malformed_next(1)

    page = SHOPIFY.fetch_page(connect(shopify_sandbox), "customers", cursor={}, since=None)

    assert len(page.records) == 12
    assert fake_time.sleeps == [0.25]


def test_a_body_that_stays_malformed_is_a_transient_error(shopify_sandbox, fake_time):
    shopify_sandbox.malformed_next(4)

    with pytest.raises(TransientError, match="not valid JSON"):
        SHOPIFY.fetch_page(connect(shopify_sandbox), "customers", cursor={}, since=None)


def test_a_response_slower_than_the_read_timeout_is_a_transient_error(shopify_sandbox, fake_time):
    shopify_sandbox.slow_next(1, delay=0.6)

    with (
        http_overrides(policy=RetryPolicy(read_timeout=0.2, max_attempts=1)),
        pytest.raises(TransientError, match="timed out"),
    ):
        SHOPIFY.fetch_page(connect(shopify_sandbox), "customers", cursor={}, since=None)


def test_a_401_with_client_credentials_gets_one_new_token_and_succeeds(shopify_sandbox, fake_time):
    stale = {
        **shopify_sandbox.client_credentials(),
        "access_token": "shpat_stale_token_000",
        "expires_at": "2099-01-01T00:00:00+00:00",
    }
    connection = connect(shopify_sandbox, stale)

    page = SHOPIFY.fetch_page(connection, "customers", cursor={}, since=None)

    assert len(page.records) == 12
    assert connection.refreshes == 1 and shopify_sandbox.tokens_issued == 1
    new_token = connection.saved_credentials[-1]["access_token"]
    assert new_token.startswith("shpat_sandbox_cc_1_")
    assert [r.header("x-shopify-access-token") for r in shopify_sandbox.requests_to(r"/customers\.json$")] == [
        "shpat_stale_token_000",
        new_token,
    ]
    assert connection.credentials["client_secret"] == shopify_sandbox.client_secret  # kept for the next grant


def test_client_credentials_without_a_token_get_one_before_the_first_call(shopify_sandbox, fake_time):
    connection = connect(shopify_sandbox, shopify_sandbox.client_credentials())

    SHOPIFY.check_connection(connection)

    assert [r.path for r in shopify_sandbox.requests] == ["/admin/oauth/access_token", "/admin/api/2026-04/shop.json"]
    expires_at = datetime.fromisoformat(connection.credentials["expires_at"])
    assert timedelta(hours=23, minutes=59) < expires_at - datetime.now(UTC) <= timedelta(hours=24)


def test_an_expiring_token_is_renewed_before_the_call(shopify_sandbox, fake_time):
    credentials = {
        **shopify_sandbox.client_credentials(),
        "access_token": "shpat_old_token_00000",
        "expires_at": (datetime.now(UTC) + timedelta(minutes=2)).isoformat(),
    }
    connection = connect(shopify_sandbox, credentials)

    SHOPIFY.check_connection(connection)

    assert connection.refreshes == 1
    assert shopify_sandbox.requests[-1].header("x-shopify-access-token") == connection.credentials["access_token"]


def test_a_revoked_static_token_is_an_auth_error_without_a_retry(shopify_sandbox, fake_time):
    shopify_sandbox.expire_tokens()
    connection = connect(shopify_sandbox)

    with pytest.raises(AuthError):
        SHOPIFY.fetch_page(connection, "orders", cursor={}, since=None)

    assert len(shopify_sandbox.requests) == 1 and connection.refreshes == 1
    assert connection.saved_credentials == []


def test_a_401_after_the_refresh_is_an_auth_error_after_exactly_one_refresh(shopify_sandbox, fake_time):
    credentials = {**shopify_sandbox.client_credentials(), "access_token": "shpat_x_000000", "expires_at": "2099-01-01"}
    shopify_sandbox.unauthorized_next(2, path="/admin/api/")
    connection = connect(shopify_sandbox, credentials)

    with pytest.raises(AuthError):
        SHOPIFY.fetch_page(connection, "customers", cursor={}, since=None)

    assert connection.refreshes == 1
    assert [r.path.rsplit("/", 1)[-1] for r in shopify_sandbox.requests] == [
        "customers.json",
        "access_token",
        "customers.json",
    ]


def test_refused_client_credentials_are_an_auth_error(shopify_sandbox, fake_time):
    connection = connect(shopify_sandbox, {"client_id": shopify_sandbox.client_id, "client_secret": "shpss_wrong"})

    with pytest.raises(AuthError, match="refused the client credentials"):
        SHOPIFY.check_connection(connection)

    assert connection.saved_credentials == []
