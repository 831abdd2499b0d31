"""The sync engine against the in-memory fake provider: counts, idempotency, ordering, resume, failures."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from integrations.errors import AuthError, RateLimitedError, TransientError
from integrations.models import IdentityMapping, RecordFailure, ResourceCursor, SyncRun
from integrations.tests.fakes import T0, customer, order, product
from orders.models import Customer, Order, OrderItem, OrderStatusHistory, Payment, Product, StockMovement

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(fake_store):
    fake_store.data["customers"] = [customer(i, i) for i in range(1, 6)]
    fake_store.data["products"] = [product(10, 1, "RING-1"), product(11, 2, "NECK-1", price="250.00")]
    fake_store.data["inventory"] = [{"id": 10, "sku": "RING-1", "available": 7, "updated_at": T0.isoformat()}]
    fake_store.data["orders"] = [
        order(100, 10, customer_id=1, payments=[{"id": "pay-100", "amount": "100.00"}]),
        order(101, 11, customer_id=2, items=[{"sku": "NECK-1", "qty": 2, "price": "250.00"}]),
        order(102, 12, customer_id=6),
    ]
    return fake_store


def test_full_sync_creates_every_record_with_exact_counts(integration, shop, run_sync):
    run = run_sync(integration)

    assert run.status == "succeeded"
    assert run.counts == {"fetched": 11, "created": 11, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    assert Customer.objects.count() == 6  # five listed plus one only embedded in an order
    assert Product.objects.count() == 2
    assert Order.objects.count() == 3
    assert OrderItem.objects.count() == 3
    payment = Payment.objects.select_related("order", "customer").get()
    assert (payment.order.external_reference, payment.customer.email) == ("#1100", "c1@example.com")
    assert Product.objects.get(sku="RING-1").stock_on_hand == 7
    assert IdentityMapping.objects.filter(resource="customers").count() == 6


def test_imported_orders_get_crm_numbers_links_and_an_audit_trail(integration, shop, run_sync):
    run_sync(integration)

    imported = Order.objects.get(external_reference="#1101")
    assert imported.number.startswith("J-")
    assert imported.customer.email == "c2@example.com"
    assert imported.total == Decimal("500.00")
    item = imported.items.get()
    assert (item.sku, item.quantity, item.line_total, item.product.sku) == ("NECK-1", 2, Decimal("500.00"), "NECK-1")
    history = OrderStatusHistory.objects.get(order=imported)
    assert (history.to_status, history.actor_type, history.actor_id) == (
        "confirmed",
        "integration",
        str(integration.pk),
    )
    movement = StockMovement.objects.get()
    assert (movement.delta, movement.reason, movement.actor_type) == (7, "inventory_sync", "integration")


def test_second_run_changes_nothing(integration, shop, run_sync):
    run_sync(integration)
    before = (Customer.objects.count(), Order.objects.count(), OrderItem.objects.count(), StockMovement.objects.count())

    again = run_sync(integration, full=True)

    assert again.status == "succeeded"
    assert (again.created, again.updated, again.unchanged) == (0, 0, 11)
    after = (Customer.objects.count(), Order.objects.count(), OrderItem.objects.count(), StockMovement.objects.count())
    assert after == before


def test_incremental_run_reads_from_the_high_watermark_minus_lookback(integration, shop, run_sync):
    run_sync(integration)
    shop.put("orders", order(101, 30, customer_id=2, items=[{"sku": "NECK-1", "qty": 3, "price": "250.00"}]))
    shop.put("orders", order(103, 31, customer_id=3))
    shop.fetches.clear()

    run = run_sync(integration, resources=["orders"])

    since = {resource: since for resource, _cursor, since in shop.fetches}
    assert since["orders"] == T0 + timedelta(minutes=12) - timedelta(minutes=5)
    # orders 100 and 102 (10 and 12 min) are re-read inside the lookback window and found unchanged
    assert (run.fetched, run.created, run.updated, run.unchanged) == (4, 1, 1, 2)
    assert Order.objects.get(external_reference="#1101").items.get().quantity == 3
    assert OrderStatusHistory.objects.filter(order__external_reference="#1101").count() == 1


def test_an_older_source_version_never_overwrites_a_newer_one(integration, shop, run_sync):
    shop.put("customers", customer(1, 50, name="New name"))
    run_sync(integration, resources=["customers"])
    shop.put("customers", customer(1, 40, name="Stale name"))

    run = run_sync(integration, resources=["customers"], full=True)

    assert Customer.objects.get(email="c1@example.com").name == "New name"
    assert run.updated == 0


def test_existing_local_customer_is_linked_by_email_not_duplicated(integration, shop, run_sync):
    local = Customer.objects.create(name="Walk-in", email="C1@Example.com")

    run = run_sync(integration, resources=["customers"])

    assert Customer.objects.filter(email__iexact="c1@example.com").count() == 1
    local.refresh_from_db()
    assert local.name == "Customer 1"
    assert (run.created, run.updated) == (4, 1)


def test_resume_after_a_crash_continues_from_the_saved_cursor_without_duplicates(integration, shop, run_sync):
    shop.data["orders"] = [order(200 + i, 20 + i) for i in range(7)]
    shop.data["customers"], shop.data["products"], shop.data["inventory"] = [], [product(10, 1, "RING-1")], []
    # fetches 1-3: customers, products, inventory; 4-5: the first two order pages; fetch 6 crashes
    shop.raise_on_fetch[6] = RuntimeError("worker killed")

    crashed = run_sync(integration)

    assert crashed.status == "failed" and crashed.error_kind == "internal"
    assert Order.objects.count() == 4
    cursor = ResourceCursor.objects.get(integration=integration, resource="orders")
    assert cursor.state == {"offset": 4}

    resumed = run_sync(integration)

    assert resumed.status == "succeeded"
    assert ("orders", {"offset": 4}, None) in [(r, c, s) for r, c, s in shop.fetches[-2:]]
    assert Order.objects.count() == 7
    assert sorted(Order.objects.values_list("external_reference", flat=True)) == [f"#{1200 + i}" for i in range(7)]
    assert resumed.cursor_before["orders"]["state"] == {"offset": 4}
    assert resumed.cursor_after["orders"]["state"] == {}


def test_a_bad_record_fails_alone_and_the_run_ends_partial(integration, shop, run_sync):
    shop.put("products", product(12, 3, "BAD-1", price="-5.00"))
    shop.put("customers", customer(7, 7, broken=True))

    run = run_sync(integration)

    assert run.status == "partial"
    assert run.failed == 2
    assert Product.objects.filter(sku="BAD-1").exists() is False
    failures = {f.external_id: f for f in RecordFailure.objects.all()}
    assert failures["12"].error == "price is negative (-5.00)"
    assert failures["7"].error == "the record is broken"
    assert '"sku": "BAD-1"' in failures["12"].payload_excerpt
    assert Order.objects.count() == 3


def test_failing_again_bumps_the_open_failure_instead_of_adding_one(integration, shop, run_sync):
    shop.put("customers", customer(7, 7, broken=True))
    run_sync(integration, resources=["customers"])
    run_sync(integration, resources=["customers"], full=True)

    failure = RecordFailure.objects.get()
    assert failure.attempts == 2


def test_record_failures_are_retried_from_their_payload_without_a_resync(
    integration, shop, run_sync, django_capture_on_commit_callbacks
):
    from integrations.services import record_failures_retry

    shop.put("inventory", {"id": 11, "sku": "NEW-SKU", "available": 3, "updated_at": T0.isoformat()})
    run_sync(integration, resources=["products", "inventory"])
    failure = RecordFailure.objects.get()
    assert failure.error == "unknown SKU 'NEW-SKU': sync products first"
    Product.objects.create(sku="NEW-SKU", name="New", price=10, currency="USD")
    shop.fetches.clear()

    with django_capture_on_commit_callbacks(execute=True):
        retry, created = record_failures_retry(integration=integration, trigger="api")
    retry.refresh_from_db()

    assert created and retry.mode == "retry_failures"
    assert shop.fetches == []
    assert (retry.status, retry.fetched, retry.created, retry.failed) == ("succeeded", 1, 1, 0)
    failure.refresh_from_db()
    assert failure.resolved_at is not None
    assert Product.objects.get(sku="NEW-SKU").stock_on_hand == 3


def test_transient_failure_fails_the_run_and_schedules_a_retry_in_the_database(integration, shop, run_sync, settings):
    settings.INTEGRATIONS_RETRY_BASE_SECONDS = 60
    shop.raise_on_fetch[1] = RateLimitedError("429 from provider", status=429, retry_after=300)

    before = timezone.now()
    run = run_sync(integration)

    assert (run.status, run.error_kind) == ("failed", "transient")
    assert run.next_attempt_at >= before + timedelta(seconds=300)
    assert run.next_attempt_at <= timezone.now() + timedelta(seconds=301)
    integration.refresh_from_db()
    assert integration.consecutive_failures == 1
    assert integration.status == "active"


def test_retry_sweeper_starts_the_next_attempt_when_due(
    integration, shop, run_sync, django_capture_on_commit_callbacks
):
    from integrations.sync.scheduling import retries_start

    shop.raise_on_fetch[1] = TransientError("503", status=503)
    failed = run_sync(integration)
    assert retries_start() == []  # not due yet

    with django_capture_on_commit_callbacks(execute=True):
        started = retries_start(now=failed.next_attempt_at + timedelta(seconds=1))

    retry = SyncRun.objects.get(pk=started[0])
    assert (retry.trigger, retry.attempt, retry.retry_of_id, retry.status) == ("retry", 2, failed.pk, "succeeded")
    failed.refresh_from_db()
    assert failed.next_attempt_at is None


def test_no_retry_is_scheduled_after_the_last_attempt(integration, shop, run_sync, settings):
    settings.INTEGRATIONS_SYNC_MAX_ATTEMPTS = 1
    shop.raise_on_fetch[1] = TransientError("503", status=503)

    run = run_sync(integration)

    assert run.status == "failed" and run.next_attempt_at is None


def test_auth_failure_disconnects_the_integration_and_alerts_exactly_once(
    integration, shop, run_sync, settings, caplog
):
    settings.ADMINS = [("Ops", "ops@example.com")]
    run_sync(integration)  # healthy first
    mail.outbox.clear()
    shop.raise_on_fetch[len(shop.fetches) + 1] = AuthError("401 after refresh", status=401)

    with caplog.at_level("WARNING", logger="jewelia.integrations.alerts"):
        run = run_sync(integration, full=True)

    assert (run.status, run.error_kind) == ("failed", "auth")
    assert run.next_attempt_at is None
    integration.refresh_from_db()
    assert (integration.status, integration.health_status) == ("disconnected", "disconnected")
    assert len(mail.outbox) == 1
    assert "disconnected" in mail.outbox[0].subject
    assert next(r.message for r in caplog.records if "health" in r.message).startswith("Integration 'Fake store'")

    from integrations.health import integration_health_refresh

    integration_health_refresh(integration=integration)
    assert len(mail.outbox) == 1  # unchanged state: no repeat


def test_one_run_at_a_time_a_second_trigger_returns_the_running_run(integration, shop):
    from integrations.services import sync_start

    first, created_first = sync_start(integration=integration, trigger="api", enqueue=False)
    second, created_second = sync_start(integration=integration, trigger="manual", enqueue=False)

    assert created_first is True and created_second is False
    assert second.pk == first.pk
    assert SyncRun.objects.count() == 1


def test_a_run_cancelled_while_running_stops_at_the_page_boundary_and_keeps_its_cursor(
    integration, shop, run_sync, monkeypatch
):
    from integrations.sync import engine

    shop.data["customers"] = [customer(i, i) for i in range(1, 7)]
    original = engine._page_apply
    pages = []

    def cancel_after_first_page(ctx, resource, raws, mappings, **kwargs):
        if pages:
            SyncRun.objects.filter(pk=ctx.run.pk).update(status="cancelled")
        pages.append(resource.name)
        return original(ctx, resource, raws, mappings, **kwargs)

    monkeypatch.setattr(engine, "_page_apply", cancel_after_first_page)
    run = run_sync(integration, resources=["customers"])

    assert run.status == "cancelled"
    assert Customer.objects.count() == 2
    assert ResourceCursor.objects.get(resource="customers").state == {"offset": 2}


def test_credentials_refresh_happens_once_and_is_stored_encrypted(integration, fake_store):
    from integrations.sync.connection import connection_build

    fake_store.refreshed_credentials = {"access_token": "tok-new-456"}
    first = connection_build(integration)
    second = connection_build(integration)  # another worker holding the old token

    assert first.refresh() == {"access_token": "tok-new-456"}
    assert second.refresh() == {"access_token": "tok-new-456"}  # sees the stored token, no second refresh

    assert fake_store.refreshes == 1
    integration.refresh_from_db()
    assert integration.get_credentials() == {"access_token": "tok-new-456"}
    assert "tok-new-456" not in integration.credentials_encrypted


@pytest.mark.skipif(connection.vendor != "postgresql", reason="only PostgreSQL refuses NUL characters in text")
def test_a_record_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_written(integration, shop, run_sync):
    shop.data["customers"] = [customer(1, 1), customer(2, 2, name="Nul\x00byte"), customer(3, 3)]
    shop.page_size = 10

    run = run_sync(integration, resources=["customers"])

    assert (run.status, run.created, run.failed) == ("partial", 2, 1)
    assert sorted(Customer.objects.values_list("email", flat=True)) == ["c1@example.com", "c3@example.com"]
    failure = RecordFailure.objects.get()
    assert failure.external_id == "2"
    assert failure.error.startswith("the database refused the record")


def test_the_providers_high_watermark_wins_over_record_times(integration, shop, run_sync, monkeypatch):
    from integrations.tests.fakes import FakeProvider

    original = FakeProvider.fetch_page

    def capped(self, connection, resource, *, cursor, since):
        page = original(self, connection, resource, cursor=cursor, since=since)
        page.high_watermark = T0  # as a provider capping at the pass's start would
        return page

    monkeypatch.setattr(FakeProvider, "fetch_page", capped)
    run_sync(integration, resources=["customers"])

    assert ResourceCursor.objects.get(resource="customers").high_watermark == T0


def test_a_payment_changed_inside_its_order_is_updated_in_place(integration, shop, run_sync):
    run_sync(integration)
    refunded = [{"id": "pay-100", "amount": "100.00", "status": "refunded"}]
    shop.put("orders", order(100, 40, customer_id=1, payments=refunded))

    run = run_sync(integration, resources=["orders"])

    assert run.updated == 1
    payment = Payment.objects.get()
    assert (payment.status, payment.order.external_reference) == ("refunded", "#1100")


def _order_page(integration, first_id: int, count: int) -> list:
    """A page of new orders, each with its own embedded customer, a payment and two items, as entries."""
    from integrations.sync.writers import Entry

    provider = integration.provider_impl
    entries = []
    for n in range(first_id, first_id + count):
        items = [{"sku": "RING-1", "qty": 1, "price": "100.00"}, {"sku": "NECK-1", "qty": 2, "price": "250.00"}]
        raw = order(n, n, customer_id=n, items=items, payments=[{"id": f"pay-{n}", "amount": "600.00"}])
        entries.append(Entry(external_id=str(n), raw=raw, records=provider.transform("orders", raw, None)))
    return entries


def test_a_pages_writes_are_a_fixed_number_of_statements_whatever_its_size(integration, shop, run_sync):
    """The writers' promise (no per-row statements): 30 new orders cost the database what 3 do, and so does
    writing each page again (every record unchanged)."""
    from django.test.utils import CaptureQueriesContext

    from integrations.sync.writers import WriteContext, records_write

    run_sync(integration, resources=["products"])
    ctx = WriteContext.for_integration(integration, integration.provider_impl)

    def statements(entries) -> int:
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            result = records_write(ctx, entries)
        assert not result.failures
        return len(queries)

    statements(_order_page(integration, 1, 1))  # warms the per-run caches (content types)
    small, large = _order_page(integration, 1000, 3), _order_page(integration, 2000, 30)
    assert statements(small) == statements(large)
    assert statements(small) == statements(large)  # the same pages again: all unchanged
    assert (Order.objects.count(), OrderItem.objects.count(), Payment.objects.count()) == (34, 68, 34)
