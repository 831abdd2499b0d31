"""Processing: routing through the handler table, the writers' ordering rule, retries, dead letters, held events,
claims taken back from killed workers, and the debounced drain."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.test import override_settings
from django.utils import timezone

from integrations.models import IdentityMapping
from orders.models import Customer, Order, Payment, Product
from webhooks.models import WebhookEvent
from webhooks.services import (
    webhook_event_process,
    webhook_event_process_claimed,
    webhook_events_drain,
    webhook_events_release_held,
    webhook_events_sweep,
)
from webhooks.services.processing import _claim
from webhooks.tests.fakes import event

pytestmark = pytest.mark.django_db


def customer(id: int, name: str = "Ada Lovelace", email: str = "ada@example.com") -> dict:
    return {"id": id, "name": name, "email": email}


def order(id: int, *, status: str = "confirmed", qty: int = 1) -> dict:
    return {"id": id, "number": f"#{id}", "status": status, "items": [{"sku": "RING-1", "qty": qty, "price": "100.00"}]}


@pytest.fixture
def receive(integration, deliver):
    """Deliver events to the integration and return their stored rows (not processed yet)."""

    def send(*payloads):
        for payload in payloads:
            assert deliver(integration, payload).status_code == 200
        return [WebhookEvent.objects.get(provider_event_id=p["id"]) for p in payloads]

    return send


def test_handled_event_is_applied_through_the_writers_and_marked_processed(integration, receive):
    (stored,) = receive(event("customer.updated", customer(7), minutes=5))

    assert webhook_events_drain() == 1

    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.last_error) == ("processed", 1, "")
    assert stored.processed_at is not None and stored.claimed_at is None
    assert stored.result == "customers: 1 created, 0 updated, 0 unchanged"
    ada = Customer.objects.get()
    assert (ada.name, ada.email) == ("Ada Lovelace", "ada@example.com")
    mapping = IdentityMapping.objects.get(integration=integration, resource="customers", external_id="7")
    assert mapping.object_id == ada.pk


def test_processing_the_same_event_again_changes_nothing(integration, receive):
    (stored,) = receive(event("order.updated", order(1), minutes=5))
    webhook_events_drain()
    WebhookEvent.objects.filter(pk=stored.pk).update(status="pending")

    webhook_events_drain()

    stored.refresh_from_db()
    assert stored.result == "orders: 0 created, 0 updated, 1 unchanged"
    assert Order.objects.count() == 1


def test_an_older_update_delivered_late_does_not_overwrite_a_newer_one(integration, receive):
    _, older = receive(
        event("order.updated", order(1, status="shipped", qty=2), minutes=10),
        event("order.updated", order(1, status="confirmed", qty=1), minutes=5),
    )

    webhook_events_drain()

    the_order = Order.objects.get()
    assert the_order.status == "shipped"
    assert the_order.items.get().quantity == 2
    older.refresh_from_db()
    assert (older.status, older.result) == ("processed", "orders: 0 created, 0 updated, 1 unchanged")


def test_a_newer_update_overwrites_an_older_one(integration, receive):
    receive(
        event("customer.updated", customer(3, name="Old Name"), minutes=5),
        event("customer.updated", customer(3, name="New Name"), minutes=10),
    )

    webhook_events_drain()

    assert Customer.objects.get().name == "New Name"


def test_a_payment_links_to_its_order_through_the_identity_map(integration, receive):
    receive(event("order.updated", order(42), minutes=1))
    webhook_events_drain()
    receive(event("payment.succeeded", {"id": "pay_1", "amount": "100.00", "order": "42"}, minutes=2))

    webhook_events_drain()

    payment = Payment.objects.get(external_id="pay_1")
    assert payment.order == Order.objects.get()
    assert payment.status == "captured"


def test_unknown_event_type_is_recorded_as_ignored(integration, receive):
    (stored,) = receive(event("shop.redacted", {}))

    webhook_events_drain()

    stored.refresh_from_db()
    assert (stored.status, stored.result, stored.last_error) == ("ignored", "No handler for shop.redacted.", "")


def test_unusable_payload_is_dead_at_once(integration, receive):
    (stored,) = receive(event("broken", {}))

    webhook_events_drain()

    stored.refresh_from_db()
    assert (stored.status, stored.next_attempt_at) == ("dead", None)
    assert stored.last_error == "The payload cannot be used: the object has no id"


@override_settings(WEBHOOKS_RETRY_BASE_SECONDS=60)
def test_transient_failure_is_retried_on_an_exponential_schedule_kept_in_the_database(integration, receive):
    (stored,) = receive(event("flaky", {}))

    before = timezone.now()
    webhook_events_drain()

    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == ("failed", 1)
    assert stored.last_error == "TransientError: provider unavailable"
    assert before + timedelta(seconds=48) <= stored.next_attempt_at <= timezone.now() + timedelta(seconds=72)

    first_due = stored.next_attempt_at
    with mock.patch("webhooks.services.processing.drain_publish") as publish:
        result = webhook_events_sweep(now=first_due + timedelta(seconds=1))
    assert result["retries"] == [stored.pk] and publish.call_count == 1
    webhook_events_drain()

    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == ("failed", 2)
    delay = (stored.next_attempt_at - timezone.now()).total_seconds()
    assert 96 - 2 <= delay <= 144


def test_failed_event_not_due_yet_is_left_alone_by_the_sweeper(integration, receive):
    (stored,) = receive(event("flaky", {}))
    webhook_events_drain()

    result = webhook_events_sweep()

    assert result["retries"] == []
    stored.refresh_from_db()
    assert stored.status == "failed"


@override_settings(WEBHOOKS_MAX_ATTEMPTS=3)
def test_event_is_dead_after_the_last_attempt(integration, receive):
    (stored,) = receive(event("flaky", {}))
    for _ in range(3):
        webhook_events_drain()
        WebhookEvent.objects.filter(pk=stored.pk, status="failed").update(status="pending")

    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.next_attempt_at) == ("dead", 3, None)
    assert stored.last_error == "TransientError: provider unavailable (gave up after 3 attempts)"


def test_record_a_writer_refuses_for_now_is_retried_not_dead(integration, receive):
    (stored,) = receive(event("inventory.updated", {"id": "inv-1", "sku": "NOPE-1", "available": 3}))

    webhook_events_drain()

    stored.refresh_from_db()
    assert stored.status == "failed"
    assert stored.last_error == "A record was refused: unknown SKU 'NOPE-1': sync products first"
    assert stored.next_attempt_at is not None


def test_inventory_update_sets_stock_of_a_known_sku(integration, receive):
    product = Product.objects.create(sku="RING-1", name="Ring", price="100.00", currency="USD")
    receive(event("inventory.updated", {"id": "inv-1", "sku": "RING-1", "available": 4}))

    webhook_events_drain()

    product.refresh_from_db()
    assert product.stock_on_hand == 4


def test_disconnect_outcome_disconnects_the_integration(integration, receive, django_capture_on_commit_callbacks):
    (stored,) = receive(event("app.uninstalled", {}))

    with django_capture_on_commit_callbacks(execute=True):
        webhook_events_drain()

    integration.refresh_from_db()
    stored.refresh_from_db()
    assert integration.status == "disconnected"
    assert integration.health_status == "disconnected"
    assert (stored.status, stored.result) == ("processed", "integration disconnected; app uninstalled")


def test_event_of_an_integration_paused_after_receipt_is_held_not_processed(integration, receive):
    (stored,) = receive(event("customer.updated", customer(1)))
    type(integration).objects.filter(pk=integration.pk).update(status="paused")

    webhook_events_drain()

    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == ("held", 0)
    assert Customer.objects.count() == 0


def test_held_events_are_processed_once_released(make_integration, deliver, django_capture_on_commit_callbacks):
    integration = make_integration(status="paused")
    deliver(integration, event("customer.updated", customer(1)))
    type(integration).objects.filter(pk=integration.pk).update(status="active")

    with django_capture_on_commit_callbacks(execute=True):
        released = webhook_events_release_held(integration=integration)

    assert released == 1
    assert WebhookEvent.objects.get().status == "processed"
    assert Customer.objects.count() == 1


def test_a_claim_abandoned_by_a_killed_worker_is_taken_back_and_processed(integration, receive):
    (stored,) = receive(event("customer.updated", customer(1)))
    ((_, lost_attempt),) = _claim(WebhookEvent.objects.filter(pk=stored.pk), limit=1)  # the worker then dies

    with override_settings(WEBHOOKS_PROCESSING_TIMEOUT_SECONDS=300):
        early = webhook_events_sweep()
        late = webhook_events_sweep(now=timezone.now() + timedelta(seconds=301))

    assert early["abandoned"] == [] and late["abandoned"] == [stored.pk]
    webhook_events_drain()
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == ("processed", 2)
    assert webhook_event_process_claimed(event_id=stored.pk, attempt=lost_attempt) is None


@override_settings(WEBHOOKS_MAX_ATTEMPTS=2)
def test_an_event_that_never_finishes_processing_ends_dead(integration, receive):
    (stored,) = receive(event("customer.updated", customer(1)))
    WebhookEvent.objects.filter(pk=stored.pk).update(
        status="processing", attempts=2, claimed_at=timezone.now() - timedelta(hours=1)
    )

    result = webhook_events_sweep()

    stored.refresh_from_db()
    assert result["dead"] == [stored.pk]
    assert stored.status == "dead"
    assert stored.last_error.startswith("Processing never finished")


def test_pending_event_past_the_grace_period_gets_a_drain(integration, receive):
    receive(event("customer.updated", customer(1)))

    with mock.patch("webhooks.services.processing.drain_publish") as publish:
        fresh = webhook_events_sweep()
        stale = webhook_events_sweep(now=timezone.now() + timedelta(minutes=5))

    assert (fresh["drain"], stale["drain"]) == (False, True)
    assert publish.call_count == 1


@override_settings(WEBHOOKS_DRAIN_BATCH=2)
def test_drain_claims_in_batches_until_nothing_is_pending(integration, receive):
    receive(*[event("customer.updated", customer(i, email=f"c{i}@example.com")) for i in range(5)])

    assert webhook_events_drain() == 5

    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Customer.objects.count() == 5


@override_settings(WEBHOOKS_DRAIN_BATCH=2)
def test_a_long_drain_hands_over_to_a_fresh_task(integration, receive):
    receive(*[event("customer.updated", customer(i, email=f"c{i}@example.com")) for i in range(5)])

    with mock.patch("webhooks.services.processing.drain_publish") as publish:
        done = webhook_events_drain(max_events=4)

    assert done == 4 and publish.call_count == 1
    assert WebhookEvent.objects.filter(status="pending").count() == 1


def test_deliveries_publish_one_drain_until_it_runs(integration, deliver, django_capture_on_commit_callbacks):
    with mock.patch("webhooks.tasks.drain.apply_async") as publish:
        with django_capture_on_commit_callbacks(execute=True):
            for i in range(3):
                deliver(integration, event("customer.updated", customer(i)))
        assert publish.call_count == 1
        webhook_events_drain()  # the drain clears the nudge first, so the next delivery publishes again
        with django_capture_on_commit_callbacks(execute=True):
            deliver(integration, event("customer.updated", customer(9)))
        assert publish.call_count == 2


def test_delivery_with_the_cache_down_is_stored_and_answered_200(
    integration, deliver, django_capture_on_commit_callbacks
):
    cache_down = mock.patch("webhooks.services.processing._nudge_key_add", side_effect=ConnectionError("redis down"))
    with cache_down, django_capture_on_commit_callbacks(execute=True):
        response = deliver(integration, event("customer.updated", customer(1)))

    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == "pending"


def test_process_event_only_takes_a_pending_event(integration, receive):
    (stored,) = receive(event("customer.updated", customer(1)))

    assert webhook_event_process(event_id=stored.pk).status == "processed"
    assert webhook_event_process(event_id=stored.pk) is None


@pytest.fixture
def with_a_worker():
    """Tasks published to a worker instead of run inline (the nudge window only applies then)."""
    from webhooks.tasks import drain

    drain.app.conf.task_always_eager = False
    yield
    drain.app.conf.task_always_eager = True


def test_within_the_debounce_window_a_process_asks_the_cache_once(
    integration, deliver, settings, django_capture_on_commit_callbacks, with_a_worker
):
    from webhooks.services import processing

    settings.WEBHOOKS_NUDGE_DEBOUNCE_SECONDS = 60
    publish = mock.patch("webhooks.tasks.drain.apply_async")
    add = mock.patch("webhooks.services.processing._nudge_key_add", wraps=processing._nudge_key_add)
    with publish as published, add as added, django_capture_on_commit_callbacks(execute=True):
        for i in range(3):
            deliver(integration, event("customer.updated", customer(i)))

    assert (published.call_count, added.call_count) == (1, 1)


def test_the_drain_looks_once_more_after_the_debounce_window(integration, deliver, settings, with_a_worker):
    settings.WEBHOOKS_NUDGE_DEBOUNCE_SECONDS = 0.05
    deliver(integration, event("customer.updated", customer(1)))

    def delivery_while_waiting(seconds):  # committed while the drain waits; its nudge was skipped
        assert seconds == 0.1
        deliver(integration, event("customer.updated", customer(2, email="b@example.com")))

    with mock.patch("webhooks.services.processing.time.sleep", side_effect=delivery_while_waiting):
        assert webhook_events_drain() == 2

    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_inline_tasks_have_no_nudge_window_and_the_drain_does_not_wait(integration, deliver, settings):
    settings.WEBHOOKS_NUDGE_DEBOUNCE_SECONDS = 60  # eager Celery (development without Redis): ignored
    deliver(integration, event("customer.updated", customer(1)))

    with mock.patch("webhooks.services.processing.time.sleep") as sleep:
        webhook_events_drain()

    sleep.assert_called_once_with(0.0)
