"""The sync engine end to end through the Shopify sandbox (a local HTTP server with Shopify's API shape).

Default sandbox store: 12 customers, 10 products with 17 variants, 30 orders with 50 line items and one
transaction each. A full sync fetches 12 + 10 + 17 (inventory per variant) + 30 = 69 raw records and writes
12 customers + 17 SKUs + 17 stock levels + 30 orders = 76 canonical records.
"""

import logging
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from integrations.http import http_overrides
from integrations.models import IdentityMapping, Integration, RecordFailure, ResourceCursor, SyncRun
from integrations.sandbox.testing import FakeClock
from orders.models import Customer, Order, OrderItem, OrderStatusHistory, Payment, Product, StockMovement

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop_integration(shopify_sandbox, actor):
    from integrations.services import integration_create

    return integration_create(
        actor=actor,
        name="Demo store",
        provider="shopify",
        config=shopify_sandbox.config(),
        credentials=shopify_sandbox.credentials(),
    )


def _db_counts() -> dict[str, int]:
    return {
        "customers": Customer.objects.count(),
        "products": Product.objects.count(),
        "orders": Order.objects.count(),
        "items": OrderItem.objects.count(),
        "payments": Payment.objects.count(),
        "stock_movements": StockMovement.objects.count(),
        "history": OrderStatusHistory.objects.count(),
    }


def test_full_sync_through_the_sandbox_has_exact_counts(shop_integration, run_sync):
    run = run_sync(shop_integration)

    assert run.status == "succeeded"
    assert run.counts == {"fetched": 69, "created": 76, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    assert _db_counts() == {
        "customers": 12,
        "products": 17,
        "orders": 30,
        "items": 50,
        "payments": 30,
        "stock_movements": 17,
        "history": 30,
    }
    order = Order.objects.select_related("customer").get(external_reference="#1001")
    assert order.channel == "online_store" and order.customer is not None
    assert set(IdentityMapping.objects.values_list("resource", flat=True)) == {
        "customers",
        "products",
        "inventory",
        "orders",
        "payment",
    }


def test_second_run_changes_nothing_incremental_or_full(shop_integration, run_sync):
    run_sync(shop_integration)
    before = _db_counts()

    incremental = run_sync(shop_integration)
    full = run_sync(shop_integration, full=True)

    assert (incremental.created, incremental.updated, incremental.failed) == (0, 0, 0)
    assert (full.created, full.updated, full.unchanged) == (0, 0, 76)
    assert _db_counts() == before


def test_incremental_sync_picks_up_changes_and_new_orders_only(shop_integration, shopify_sandbox, run_sync):
    run_sync(shop_integration)
    first_order = shopify_sandbox.all("orders")[0]
    shopify_sandbox.update_order(first_order["id"], note="Engrave: forever")
    shopify_sandbox.add_order()
    shopify_sandbox.requests.clear()

    run = run_sync(shop_integration, resources=["orders"])

    assert (run.created, run.updated, run.failed) == (1, 1, 0)
    assert run.unchanged == run.fetched - 2
    assert Order.objects.count() == 31
    assert Order.objects.get(external_reference=first_order["name"]).notes == "Engrave: forever"
    order_requests = shopify_sandbox.requests_to(r"/orders\.json$")
    assert order_requests[0].param("updated_at_min") is not None
    assert order_requests[0].param("status") == "any"


def test_resume_after_a_crash_mid_run_continues_from_the_saved_cursor_without_duplicates(
    make_shopify_sandbox, actor, run_sync, monkeypatch
):
    from integrations.providers.shopify.provider import ShopifyProvider
    from integrations.services import integration_create

    sandbox = make_shopify_sandbox(orders=120)
    integration = integration_create(
        actor=actor,
        name="Crashy",
        provider="shopify",
        config=sandbox.config(page_size=25),
        credentials=sandbox.credentials(),
    )
    original = ShopifyProvider.fetch_page
    order_pages = []

    def crash_after_two_order_pages(self, connection, resource, *, cursor, since):
        if resource == "orders":
            order_pages.append(dict(cursor))
            if len(order_pages) == 3:
                raise RuntimeError("worker killed after page 2")
        return original(self, connection, resource, cursor=cursor, since=since)

    monkeypatch.setattr(ShopifyProvider, "fetch_page", crash_after_two_order_pages)
    crashed = run_sync(integration)

    assert (crashed.status, crashed.error_kind) == ("failed", "internal")
    assert Order.objects.count() == 50
    saved = ResourceCursor.objects.get(integration=integration, resource="orders").state
    assert "page_info=" in saved["next_url"]

    resumed = run_sync(integration)

    assert resumed.status == "succeeded"
    assert order_pages[3] == saved  # the rerun asked for exactly the page after the last one written
    assert resumed.counts["created"] == 70
    assert Order.objects.count() == 120
    assert Order.objects.values("external_reference").distinct().count() == 120
    assert OrderStatusHistory.objects.count() == 120


def test_429s_are_waited_out_by_the_http_layer_and_the_run_succeeds(shop_integration, shopify_sandbox, run_sync):
    shopify_sandbox.rate_limit_next(2, retry_after="3.0", path="/admin/api/")
    clock = FakeClock()

    with http_overrides(sleep=clock.sleep, clock=clock.monotonic):
        run = run_sync(shop_integration)

    assert run.status == "succeeded"
    assert sum(1 for wait in clock.sleeps if wait >= 3.0) >= 2


def test_persistent_429s_fail_the_run_and_schedule_the_retry_after_retry_after(
    shop_integration, shopify_sandbox, run_sync, settings
):
    settings.INTEGRATIONS_RETRY_BASE_SECONDS = 10
    shopify_sandbox.rate_limit_next(50, retry_after="120", path="/admin/api/")
    clock = FakeClock()

    before = timezone.now()
    with http_overrides(sleep=clock.sleep, clock=clock.monotonic):
        run = run_sync(shop_integration)

    assert (run.status, run.error_kind) == ("failed", "transient")
    assert run.next_attempt_at >= before + timedelta(seconds=120)
    shop_integration.refresh_from_db()
    assert shop_integration.status == "active"


def test_persistent_5xx_fails_the_run_with_a_backoff_retry_in_the_database(
    shop_integration, shopify_sandbox, run_sync, settings
):
    settings.INTEGRATIONS_RETRY_BASE_SECONDS = 60
    shopify_sandbox.fail_next(50, status=503, path="/admin/api/")
    clock = FakeClock()

    before = timezone.now()
    with http_overrides(sleep=clock.sleep, clock=clock.monotonic):
        run = run_sync(shop_integration)

    assert (run.status, run.error_kind, run.attempt) == ("failed", "transient", 1)
    assert before + timedelta(seconds=47) <= run.next_attempt_at <= timezone.now() + timedelta(seconds=73)
    assert SyncRun.objects.count() == 1


def test_401_disconnects_the_integration_and_sends_exactly_one_alert(
    shop_integration, shopify_sandbox, run_sync, settings
):
    settings.ADMINS = [("Ops", "ops@example.com")]
    run_sync(shop_integration)
    mail.outbox.clear()
    shopify_sandbox.unauthorized_next(50)

    run = run_sync(shop_integration, full=True)

    assert (run.status, run.error_kind, run.next_attempt_at) == ("failed", "auth", None)
    shop_integration.refresh_from_db()
    assert (shop_integration.status, shop_integration.health_status) == ("disconnected", "disconnected")
    assert len(mail.outbox) == 1
    from integrations.sync.scheduling import dispatch_due

    assert dispatch_due(now=timezone.now() + timedelta(days=1)) == []  # not scheduled while disconnected
    from integrations.tasks import check_health

    check_health()
    assert len(mail.outbox) == 1


def test_a_malformed_record_fails_alone_and_is_retried_after_the_source_fixes_it(
    shop_integration, shopify_sandbox, run_sync, django_capture_on_commit_callbacks
):
    from integrations.services import record_failures_retry

    bad = shopify_sandbox.all("orders")[3]
    shopify_sandbox.make_malformed("orders", bad["id"], total_price="not money")

    run = run_sync(shop_integration)

    assert run.status == "partial"
    assert (run.failed, Order.objects.count()) == (1, 29)
    failure = RecordFailure.objects.get()
    assert (failure.resource, failure.external_id) == ("orders", str(bad["id"]))
    assert failure.payload["total_price"] == "not money"
    assert failure.payload_excerpt.startswith('{"admin_graphql_api_id"')

    shopify_sandbox.update_order(bad["id"], total_price=bad["total_price"])
    with django_capture_on_commit_callbacks(execute=True):
        retry, _ = record_failures_retry(integration=shop_integration, trigger="api")

    retry.refresh_from_db()
    assert (retry.status, retry.created, retry.failed) == ("succeeded", 1, 0)
    assert Order.objects.count() == 30
    assert RecordFailure.objects.get().resolved_at is not None


def test_the_access_token_never_appears_in_logs_runs_or_failures(shop_integration, shopify_sandbox, run_sync, caplog):
    token = shopify_sandbox.credentials()["access_token"]
    shopify_sandbox.fail_next(1, status=500, path="/admin/api/")
    clock = FakeClock()

    with caplog.at_level(logging.DEBUG), http_overrides(sleep=clock.sleep, clock=clock.monotonic):
        run = run_sync(shop_integration)

    assert token not in caplog.text
    assert token not in str(run.cursor_after) + run.error_summary
    assert token not in Integration.objects.get().credentials_encrypted


def test_a_base_url_on_a_disallowed_host_is_refused(shopify_sandbox, actor, settings):
    from integrations.services import integration_create
    from jewelia.core.exceptions import ValidationFailed

    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = []
    with pytest.raises(ValidationFailed) as refused:
        integration_create(
            actor=actor,
            name="Evil",
            provider="shopify",
            config=shopify_sandbox.config(base_url="http://10.0.0.5/admin"),
            credentials={"access_token": "x"},
        )

    assert refused.value.details["fields"]["config"][0].startswith("base_url:")
    assert Integration.objects.count() == 0


def test_a_row_pointed_at_a_disallowed_host_behind_the_apis_back_never_syncs(shop_integration, run_sync, settings):
    Integration.objects.filter(pk=shop_integration.pk).update(config={"shop": "x", "base_url": "http://10.0.0.7/"})
    shop_integration.refresh_from_db()

    run = run_sync(shop_integration)

    assert (run.status, run.error_kind) == ("failed", "permanent")
    assert run.error_summary.startswith("Cannot connect")
