"""Push sync through the outbox (`integrations.outbox`) against the QuickBooks sandbox: entries written in the
change's transaction, push rules validated against the provider, invoices and customers pushed with the entry's
idempotency key (QuickBooks requestid), updates instead of second creates, SyncToken conflicts, crashes and
retries on the database schedule, and the API and admin views of the outbox.

Local changes go through the orders services, which call `outbox_enqueue_for` inside their own transactions."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from integrations.http import RetryPolicy, http_overrides
from integrations.models import IdentityMapping, Integration, OutboxEntry, PushRule
from integrations.outbox import outbox_enqueue_for
from integrations.outbox import services as outbox
from integrations.outbox.snapshots import snapshot_build
from integrations.providers.registry import get_provider
from integrations.tests import test_oauth_flow as flow
from jewelia.core.actors import Actor
from jewelia.core.exceptions import ValidationFailed
from orders.models import Customer, Order, Product
from orders.services import customer_create, customer_update, order_create, order_transition, order_update
from orders.services.orders import ItemInput

# Fixtures shared with the connect-flow tests.
make_qb_integration = flow.make_qb_integration
staff_session = flow.staff_session

ACTOR = Actor("user", "1", "staff")
RING = ItemInput(quantity=2, unit_price=Decimal("398.00"), name="18k Solitaire Ring", sku="RING-18K-SOL")
INVOICES = {"event": "order.placed", "resource": "invoices"}


@pytest.fixture(autouse=True)
def no_sleep():
    """Provider calls retry without really sleeping; one attempt per call unless a test says otherwise."""
    with http_overrides(sleep=lambda seconds: None, random=lambda: 0.5, policy=RetryPolicy(max_attempts=1)):
        yield


@pytest.fixture
def qb(make_qb_integration):
    return make_qb_integration(connected=True)


def configure(integration, *rules) -> None:
    outbox.push_rules_replace(integration=integration, rules=[dict(rule) for rule in rules])


def customer_created(name="Grace Kelly", email="grace@example.com") -> Customer:
    return customer_create(actor=ACTOR, data={"name": name, "email": email})


def order_placed(*, customer=None, channel="online_store", status="pending", items=(RING,), **fields) -> Order:
    """An order placed for `customer` (by default a new one QuickBooks does not know yet)."""
    with transaction.atomic():
        if customer is None:
            customer = Customer.objects.create(name=f"Customer {Customer.objects.count() + 1}")
        order = order_create(
            actor=ACTOR, currency="USD", items=list(items), customer=customer, channel=channel, status=status, **fields
        )
    return order


def send_all(*, now=None) -> list[OutboxEntry]:
    """What the nudged tasks do: send every entry that is due, in order."""
    ids = OutboxEntry.objects.order_by("id").values_list("pk", flat=True)
    for entry_id in ids:
        outbox.outbox_entry_send(entry_id=entry_id, now=now)
    return list(OutboxEntry.objects.order_by("id"))


def invoices_numbered(sandbox, number: str) -> list[dict]:
    return [i for i in sandbox.all("Invoice") if i.get("DocNumber") == number]


def mapped(integration, resource: str, obj) -> list[str]:
    return list(
        IdentityMapping.objects.filter(
            integration=integration,
            resource=resource,
            content_type=ContentType.objects.get_for_model(obj),
            object_id=obj.pk,
        ).values_list("external_id", flat=True)
    )


# --- enqueue ----------------------------------------------------------------------------------------------------------


def test_an_entry_is_written_in_the_changes_transaction_and_rolls_back_with_it(qb):
    configure(qb, INVOICES)

    with pytest.raises(RuntimeError, match="boom"), transaction.atomic():
        order_create(actor=ACTOR, currency="USD", items=[RING])
        outbox_enqueue_for(event="order.placed", obj=Order.objects.get())
        assert OutboxEntry.objects.count() == 1
        raise RuntimeError("boom")

    assert (Order.objects.count(), OutboxEntry.objects.count()) == (0, 0)


def test_orders_services_enqueue_placed_paid_and_completed_orders(qb):
    configure(
        qb,
        INVOICES,
        {"event": "order.paid", "resource": "sales_receipts", "channels": ["in_store"]},
        {"event": "customer.updated", "resource": "customers"},
    )
    customer = Customer.objects.create(name="Ada")
    order = order_placed(customer=customer, channel="in_store")
    order_update(order=order, actor=ACTOR, data={"payment_status": "paid"})
    order_update(order=order, actor=ACTOR, data={"notes": "still paid: no second paid event"})
    customer_update(customer=customer, actor=ACTOR, data={"phone": "+1 555 0100"})

    assert sorted(OutboxEntry.objects.values_list("resource", flat=True)) == ["customers", "invoices", "sales_receipts"]


def test_completing_an_order_enqueues_order_completed(qb):
    configure(qb, {"event": "order.completed", "resource": "invoices"})
    order = order_placed(status="delivered")
    assert OutboxEntry.objects.count() == 0

    order_transition(order=order, to_status="completed", actor=ACTOR)

    assert list(OutboxEntry.objects.values_list("resource", "object_id")) == [("invoices", order.pk)]


def test_the_sender_is_nudged_only_after_commit(qb, django_capture_on_commit_callbacks, qb_sandbox):
    configure(qb, INVOICES)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        order = order_placed()
        assert OutboxEntry.objects.get().status == "pending"

    assert len(callbacks) == 1
    assert OutboxEntry.objects.get().status == "sent"
    assert len(invoices_numbered(qb_sandbox, order.number)) == 1


def test_only_matching_rules_of_non_draft_integrations_enqueue(qb, make_qb_integration):
    configure(
        qb,
        {"event": "order.paid", "resource": "sales_receipts", "channels": ["in_store", "pos"]},
        {"event": "order.completed", "resource": "invoices"},
    )
    draft = make_qb_integration(name="Not connected yet")
    configure(draft, {"event": "order.paid", "resource": "sales_receipts"})
    online, counter = order_placed(channel="online_store"), order_placed(channel="in_store")

    with transaction.atomic():
        assert outbox_enqueue_for(event="order.paid", obj=online) == []
        entries = outbox_enqueue_for(event="order.paid", obj=counter)

    assert [(e.integration_id, e.resource, e.object_id, e.operation) for e in entries] == [
        (qb.pk, "sales_receipts", counter.pk, "create")
    ]


def test_changes_before_the_first_send_make_one_entry(qb):
    configure(
        qb,
        {"event": "customer.created", "resource": "customers"},
        {"event": "customer.updated", "resource": "customers"},
    )
    customer = customer_created()

    for name in ("Grace P. Kelly", "Grace Patricia Kelly"):
        with transaction.atomic():
            outbox_enqueue_for(event="customer.updated", obj=customer_update_name(customer, name))

    assert list(OutboxEntry.objects.order_by("id").values_list("event", flat=True)) == [
        "customer.created",
        "customer.updated",
    ]


def customer_update_name(customer: Customer, name: str) -> Customer:
    from orders.services import customer_update

    return customer_update(customer=customer, actor=ACTOR, data={"name": name})


def test_enqueueing_outside_a_transaction_is_a_programming_error(qb, monkeypatch):
    from types import SimpleNamespace

    outside = SimpleNamespace(in_atomic_block=False)  # the test itself runs inside a transaction

    with monkeypatch.context() as patched, pytest.raises(RuntimeError, match="inside the transaction"):
        patched.setattr(outbox.transaction, "get_connection", lambda using=None: outside)
        outbox_enqueue_for(event="customer.created", obj=Customer(pk=1, name="x"))


# --- push rules -------------------------------------------------------------------------------------------------------


def test_push_rules_are_validated_against_what_the_provider_can_push(qb):
    configure(qb, INVOICES)

    with pytest.raises(ValidationFailed) as caught:
        configure(
            qb,
            {"event": "order.placed", "resource": "customers"},
            {"event": "customer.created", "resource": "customers", "channels": ["pos"]},
            {"event": "order.paid", "resource": "sales_receipts", "options": {"default_item_id": "x"}},
        )

    assert caught.value.details == {
        "fields": {
            "rules": {
                "0": {
                    "resource": [
                        "QuickBooks Online cannot push 'customers' for order.placed. "
                        "Choose one of: invoices, sales_receipts."
                    ]
                },
                "1": {"channels": ["Only order events can be narrowed to sales channels."]},
                "2": {"options": ["default_item_id: 'x' does not match '^[0-9]{1,32}$'"]},
            }
        }
    }
    assert list(PushRule.objects.values_list("event", "resource")) == [("order.placed", "invoices")]


def test_a_push_rule_given_twice_is_refused_and_nothing_changes(qb):
    configure(qb, INVOICES)

    with pytest.raises(ValidationFailed) as caught:
        configure(qb, {"event": "order.paid", "resource": "invoices"}, {"event": "order.paid", "resource": "invoices"})

    assert caught.value.details == {
        "fields": {"rules": {"1": {"resource": ["order.paid -> invoices is configured twice."]}}}
    }
    assert list(PushRule.objects.values_list("event", "resource")) == [("order.placed", "invoices")]


def test_push_rules_are_visible_and_editable_through_the_api(qb, staff_session):
    url = f"/api/integrations/{qb.pk}/push-rules/"
    rules = [
        {"event": "order.completed", "resource": "invoices", "channels": [], "options": {}, "enabled": True},
        {
            "event": "order.paid",
            "resource": "sales_receipts",
            "channels": ["in_store"],
            "options": {"default_customer_id": "59"},
            "enabled": True,
        },
    ]

    saved = staff_session.put(url, {"rules": rules}, format="json")
    refused = staff_session.put(url, {"rules": [{"event": "order.placed", "resource": "items"}]}, format="json")

    assert saved.status_code == 200 and saved.json()["rules"] == rules
    assert saved.json()["targets"]["order.paid"] == ["invoices", "sales_receipts"]
    assert saved.json()["targets"]["customer.created"] == ["customers"]
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "validation_error"
    assert staff_session.get(url).json()["rules"] == rules


# --- sending ----------------------------------------------------------------------------------------------------------


def test_an_order_becomes_an_invoice_numbered_like_the_crm_order_and_is_mapped(qb, qb_sandbox):
    configure(qb, INVOICES)
    order = order_placed(customer=customer_created(), notes="Gift wrap")

    (entry,) = send_all()

    (invoice,) = invoices_numbered(qb_sandbox, order.number)
    assert (entry.status, entry.operation, entry.external_id, entry.attempts) == ("sent", "create", invoice["Id"], 1)
    assert mapped(qb, "invoices", order) == [invoice["Id"]]
    assert invoice["PrivateNote"] == "Gift wrap"
    assert float(invoice["TotalAmt"]) == 796.0
    line = invoice["Line"][0]["SalesItemLineDetail"]
    ring = next(i for i in qb_sandbox.all("Item") if i["Name"] == "18k Solitaire Ring")
    assert (line["ItemRef"]["value"], line["Qty"]) == (ring["Id"], 2)
    customer = next(c for c in qb_sandbox.all("Customer") if c["Id"] == invoice["CustomerRef"]["value"])
    assert customer["DisplayName"] == "Grace Kelly"
    writes = qb_sandbox.requests_to(r"/invoice$")
    assert [r.param("requestid") for r in writes] == [entry.idempotency_key]


def test_an_order_pushed_twice_creates_one_invoice_and_updates_it(qb, qb_sandbox):
    configure(qb, INVOICES, {"event": "order.completed", "resource": "invoices"})
    order = order_placed(status="delivered")
    send_all()
    token_before = invoices_numbered(qb_sandbox, order.number)[0]["SyncToken"]
    with transaction.atomic():
        order = order_update(order=order, actor=ACTOR, data={"notes": "Engraved: A & G"})
        order = order_transition(order=order, to_status="completed", actor=ACTOR)
        outbox_enqueue_for(event="order.completed", obj=order)

    first, second = send_all()

    (invoice,) = invoices_numbered(qb_sandbox, order.number)
    assert (first.operation, second.operation) == ("create", "update")
    assert first.external_id == second.external_id == invoice["Id"]
    assert (invoice["PrivateNote"], int(invoice["SyncToken"])) == ("Engraved: A & G", int(token_before) + 1)
    assert mapped(qb, "invoices", order) == [invoice["Id"]]


def test_an_invoice_changed_in_quickbooks_meanwhile_is_reread_and_updated(qb, qb_sandbox):
    configure(qb, INVOICES, {"event": "order.completed", "resource": "invoices"})
    order = order_placed(status="delivered")
    (entry,) = send_all()
    qb_sandbox.edit_before_next_update("Invoice", entry.external_id)  # a bookkeeper edits it: stale SyncToken
    with transaction.atomic():
        order = order_update(order=order, actor=ACTOR, data={"notes": "Resized to 54"})
        outbox_enqueue_for(
            event="order.completed", obj=order_transition(order=order, to_status="completed", actor=ACTOR)
        )

    _, second = send_all()

    (invoice,) = invoices_numbered(qb_sandbox, order.number)
    assert (second.status, second.external_id) == ("sent", invoice["Id"])
    assert invoice["PrivateNote"] == "Resized to 54"
    assert [r.status for r in qb_sandbox.requests_to(r"/invoice$")] == [200, 400, 200]


def test_a_crash_between_sending_and_recording_does_not_duplicate_on_retry(qb, qb_sandbox, monkeypatch, settings):
    configure(qb, {"event": "customer.created", "resource": "customers"})
    customer_created(name="Coco Mademoiselle", email="coco@example.com")

    class WorkerKilled(BaseException):
        """The worker process dies right after QuickBooks created the customer."""

    def die(**kwargs):
        raise WorkerKilled

    monkeypatch.setattr(outbox, "identity_record", die)
    with pytest.raises(WorkerKilled):
        send_all()
    monkeypatch.undo()
    entry = OutboxEntry.objects.get()
    assert (entry.status, entry.attempts, entry.claimed_until is not None) == ("pending", 1, True)
    assert outbox.outbox_due() == []  # its lease is still running

    later = timezone.now() + timedelta(seconds=settings.INTEGRATIONS_OUTBOX_LEASE_SECONDS + 1)
    assert outbox.outbox_due(now=later) == [entry.pk]
    (entry,) = send_all(now=later)

    created = [c for c in qb_sandbox.all("Customer") if c["DisplayName"] == "Coco Mademoiselle"]
    assert len(created) == 1
    assert (entry.status, entry.attempts, entry.external_id) == ("sent", 2, created[0]["Id"])
    writes = qb_sandbox.requests_to(r"/customer$")
    assert [r.param("requestid") for r in writes] == [entry.idempotency_key] * 2
    assert mapped(qb, "customers", Customer.objects.get()) == [created[0]["Id"]]


def test_a_lost_answer_is_retried_with_the_same_requestid_and_makes_one_invoice(qb, qb_sandbox):
    configure(qb, INVOICES)
    order = order_placed()
    qb_sandbox.lose_response_next()

    with http_overrides(sleep=lambda seconds: None, random=lambda: 0.5, policy=RetryPolicy(max_attempts=2)):
        (entry,) = send_all()

    assert entry.status == "sent"
    assert len(invoices_numbered(qb_sandbox, order.number)) == 1


def test_a_transient_failure_is_retried_on_the_database_schedule(qb, qb_sandbox, settings):
    configure(qb, INVOICES)
    order = order_placed()
    qb_sandbox.fail_next(1, status=503, path="/v3/")

    (failed,) = send_all()

    assert (failed.status, failed.attempts) == ("failed", 1)
    assert "failed with 503" in failed.last_error
    delay = (failed.next_attempt_at - failed.updated_at).total_seconds()
    assert 0.8 * 30 - 1 <= delay <= 1.2 * 30 + 1
    assert outbox.outbox_entry_send(entry_id=failed.pk) is None  # not due yet
    (sent,) = send_all(now=failed.next_attempt_at)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 2, "")
    assert len(invoices_numbered(qb_sandbox, order.number)) == 1


def test_an_entry_is_dead_after_the_last_attempt(qb, qb_sandbox, settings):
    settings.INTEGRATIONS_OUTBOX_MAX_ATTEMPTS = 2
    configure(qb, INVOICES)
    order_placed()
    qb_sandbox.fail_next(2, status=503, path="/v3/")

    (entry,) = send_all()
    (entry,) = send_all(now=entry.next_attempt_at)

    assert (entry.status, entry.attempts, entry.next_attempt_at) == ("dead", 2, None)
    assert entry.last_error.endswith("(gave up after 2 attempts)")


def test_a_record_quickbooks_cannot_take_is_dead_at_once_with_the_reason(qb, qb_sandbox):
    configure(qb, INVOICES)
    order_placed(items=[ItemInput(quantity=1, unit_price=Decimal("75.00"), name="Custom engraving", sku="ENGR")])

    (entry,) = send_all()

    assert (entry.status, entry.attempts) == ("dead", 1)
    assert entry.last_error == (
        "no QuickBooks item named 'Custom engraving' (SKU 'ENGR'): push the product first or set default_item_id"
    )


def test_the_rule_options_reach_the_provider(qb, qb_sandbox):
    configure(qb, {**INVOICES, "options": {"default_item_id": "10"}})
    order = order_placed(items=[ItemInput(quantity=1, unit_price=Decimal("75.00"), name="Custom engraving")])

    (entry,) = send_all()

    assert entry.status == "sent"
    (invoice,) = invoices_numbered(qb_sandbox, order.number)
    assert invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == "10"


def test_an_entry_whose_order_was_deleted_is_dead(qb):
    configure(qb, INVOICES)
    order = order_placed()
    Order.objects.filter(pk=order.pk).delete()

    (entry,) = send_all()

    assert (entry.status, entry.last_error) == ("dead", f"The local order {order.pk} no longer exists.")


def test_a_refused_grant_disconnects_and_the_entry_waits_for_the_reconnect(qb, qb_sandbox):
    configure(qb, INVOICES)
    order_placed()
    qb_sandbox.revoke_all()

    (entry,) = send_all()

    assert Integration.objects.get(pk=qb.pk).status == "disconnected"
    assert (entry.status, entry.next_attempt_at is not None) == ("failed", True)
    assert outbox.outbox_due(now=timezone.now() + timedelta(hours=1)) == []


def test_only_one_entry_of_an_object_is_in_flight(qb):
    configure(qb, INVOICES, {"event": "order.completed", "resource": "invoices"})
    order = order_placed(status="completed")
    with transaction.atomic():
        outbox_enqueue_for(event="order.completed", obj=order)
    first, second = OutboxEntry.objects.order_by("id")

    assert outbox._claim(first.pk, timezone.now()) is not None
    assert outbox._claim(second.pk, timezone.now()) is None
    assert OutboxEntry.objects.get(pk=second.pk).attempts == 0


def test_the_sweeper_sends_what_is_due_of_active_integrations_only(qb, make_qb_integration, qb_sandbox):
    configure(qb, INVOICES)
    paused = make_qb_integration(connected=True, name="Paused books")
    configure(paused, INVOICES)
    Integration.objects.filter(pk=paused.pk).update(status="paused")
    order_placed()
    fresh = timezone.now()
    mine = OutboxEntry.objects.get(integration=qb)

    assert outbox.outbox_due(now=fresh) == []  # just written: its own nudge is on the way
    assert outbox.outbox_due(now=fresh + timedelta(seconds=61)) == [mine.pk]


# --- snapshots --------------------------------------------------------------------------------------------------------


def test_snapshots_carry_this_integrations_external_ids_and_the_crm_number(qb, make_qb_integration):
    other = make_qb_integration(connected=True, name="Other books")
    product = Product.objects.create(
        sku="RING-18K-SOL", name="18k Solitaire Ring", price=Decimal("398"), currency="USD"
    )
    customer = Customer.objects.create(name="Grace Kelly")
    order = order_create(
        actor=ACTOR,
        currency="USD",
        customer=customer,
        items=[ItemInput(quantity=1, unit_price=Decimal("398.00"), product=product)],
    )
    for integration, customer_id, item_id in ((qb, "77", "5"), (other, "88", "6")):
        for obj, resource, external_id in ((customer, "customers", customer_id), (product, "items", item_id)):
            IdentityMapping.objects.create(
                integration=integration,
                resource=resource,
                external_id=external_id,
                content_type=ContentType.objects.get_for_model(obj),
                object_id=obj.pk,
                content_hash="x",
            )

    record = snapshot_build(integration=qb, provider=get_provider("quickbooks"), obj=order)

    assert (record.external_number, record.customer.external_id, record.items[0].external_id) == (
        order.number,
        "77",
        "5",
    )
    assert (record.total, record.currency, record.items[0].sku) == (Decimal("398.000"), "USD", "RING-18K-SOL")


# --- API and admin ----------------------------------------------------------------------------------------------------


def test_outbox_rows_are_listed_with_their_status_and_reason(qb, qb_sandbox, staff_session):
    configure(qb, INVOICES)
    sent_order = order_placed()
    send_all()
    order_placed(items=[ItemInput(quantity=1, unit_price=Decimal("75.00"), name="Custom engraving", sku="ENGR")])
    send_all()

    listed = staff_session.get(f"/api/integrations/{qb.pk}/outbox/").json()["results"]
    dead = staff_session.get(f"/api/integrations/{qb.pk}/outbox/?status=dead").json()["results"]
    bad = staff_session.get(f"/api/integrations/{qb.pk}/outbox/?status=lost")

    assert [(e["status"], e["local_type"], e["resource"]) for e in listed] == [
        ("dead", "orders.order", "invoices"),
        ("sent", "orders.order", "invoices"),
    ]
    assert listed[1]["external_id"] == invoices_numbered(qb_sandbox, sent_order.number)[0]["Id"]
    assert [e["last_error"][:27] for e in dead] == ["no QuickBooks item named 'C"]
    assert bad.status_code == 400


def test_a_dead_entry_is_retried_from_the_api(qb, qb_sandbox, staff_session, django_capture_on_commit_callbacks):
    configure(qb, INVOICES)
    order = order_placed()
    qb_sandbox.fail_next(
        1,
        status=400,
        body={"Fault": {"Error": [{"Message": "nope", "code": "2500"}], "type": "ValidationFault"}},
        path="/v3/",
    )
    (entry,) = send_all()
    assert entry.status == "dead"

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_session.post(f"/api/integrations/{qb.pk}/outbox/{entry.pk}/retry/")

    again = staff_session.post(f"/api/integrations/{qb.pk}/outbox/{entry.pk}/retry/")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert OutboxEntry.objects.get().status == "sent"
    assert len(invoices_numbered(qb_sandbox, order.number)) == 1
    assert again.status_code == 409 and again.json()["error"]["code"] == "outbox_not_retryable"
    assert staff_session.post(f"/api/integrations/{qb.pk}/outbox/999999/retry/").status_code == 404


def test_reading_the_outbox_needs_read_and_retrying_needs_sync_scope(qb):
    from integrations.tests.test_api import _key_client

    reader = _key_client("integrations:read")

    assert reader.get(f"/api/integrations/{qb.pk}/outbox/").status_code == 200
    refused = reader.post(f"/api/integrations/{qb.pk}/outbox/1/retry/")
    assert refused.status_code == 403 and "integrations:sync" in refused.json()["error"]["message"]


def test_the_admin_lists_outbox_entries_and_retries_them(qb, qb_sandbox, staff_session):
    configure(qb, INVOICES)
    order_placed()
    qb_sandbox.fail_next(1, status=503, path="/v3/")
    (entry,) = send_all()

    listing = staff_session.get("/admin/integrations/outboxentry/?status__exact=failed")
    retried = staff_session.post(
        "/admin/integrations/outboxentry/", {"action": "retry", "_selected_action": [entry.pk]}
    )
    page = staff_session.get(f"/admin/integrations/integration/{qb.pk}/change/")

    assert listing.status_code == 200 and b"failed with 503" in listing.content
    assert retried.status_code == 302 and OutboxEntry.objects.get().status in ("pending", "sent")
    assert b"order.placed -&gt; invoices" in page.content


# --- the demo --------------------------------------------------------------------------------------------------------


def test_the_seeded_quickbooks_integration_is_connected_to_the_sandbox_and_pushes_completed_orders(
    db, settings, make_qb_sandbox
):
    """The sandbox as `python -m integrations.sandbox` mounts it (under /quickbooks), seeded as seed_demo does."""
    import io

    from django.core.management.color import no_style

    from integrations import demo
    from integrations.sandbox.quickbooks import QuickBooksSandbox
    from integrations.sandbox.server import SandboxServer
    from integrations.sync.connection import connection_build

    sandbox = QuickBooksSandbox()
    server = SandboxServer({"/quickbooks": sandbox}).start()
    settings.SANDBOX_BASE_URL = server.url
    try:
        demo.seed(stdout=io.StringIO(), style=no_style())
        demo.seed(stdout=io.StringIO(), style=no_style())
        integration = Integration.objects.get(name="QuickBooks Online")
        provider = get_provider("quickbooks")
        provider.check_connection(connection_build(integration, provider=provider))
        with transaction.atomic():
            order = order_create(
                actor=ACTOR,
                currency="EUR",
                status="completed",
                customer=Customer.objects.create(name="Frida Kahlo"),
                items=[ItemInput(quantity=1, unit_price=Decimal("1450.00"), name="Emerald pendant", sku="PEND-EM")],
            )
            outbox_enqueue_for(event="order.completed", obj=order)
        (entry,) = send_all()
    finally:
        server.stop()

    assert (integration.status, integration.config["realm_id"]) == ("active", sandbox.realm_id)
    assert integration.config["base_url"] == integration.config["oauth_base_url"] == server.url + "/quickbooks"
    assert Integration.objects.filter(provider="quickbooks").count() == 1
    assert entry.status == "sent", entry.last_error
    (invoice,) = invoices_numbered(sandbox, order.number)
    ring_resizing = sandbox.get("Item", demo.QUICKBOOKS_DEMO_ITEM_ID)
    assert (ring_resizing["Name"], ring_resizing["Type"]) == ("Ring resizing", "Service")
    assert invoice["Line"][0]["Description"] == "Emerald pendant"


def test_push_rules_are_edited_in_the_admin_with_the_same_validation(qb, staff_session):
    url = "/admin/integrations/pushrule/add/"
    form = {"integration": qb.pk, "event": "order.paid", "resource": "items", "channels": "[]", "options": "{}"}

    refused = staff_session.post(url, form)
    saved = staff_session.post(url, {**form, "resource": "sales_receipts", "channels": '["in_store"]', "enabled": "on"})

    assert refused.status_code == 200 and b"cannot push &#x27;items&#x27; for order.paid" in refused.content
    assert saved.status_code == 302
    assert list(PushRule.objects.values_list("event", "resource", "channels")) == [
        ("order.paid", "sales_receipts", ["in_store"])
    ]


# --- edits made in the Django admin ----------------------------------------------------------------------------------
# The admin's order and customer pages save the rows themselves (their forms are not the API's services), so they
# queue the same pushes through `order_saved_directly` / `customer_saved_directly`.


def _pushed() -> list[tuple[str, int]]:
    return list(OutboxEntry.objects.order_by("id").values_list("event", "object_id"))


def test_an_order_created_in_the_admin_is_pushed_with_its_items(qb, qb_sandbox, staff_session):
    configure(qb, INVOICES)
    customer = Customer.objects.create(name="Coco Chanel")
    form = {
        "external_reference": "",
        "customer": customer.pk,
        "channel": "in_store",
        "placed_at_0": "2026-11-27",
        "placed_at_1": "10:00:00",
        "payment_status": "unpaid",
        "fulfillment_status": "unfulfilled",
        "currency": "USD",
        "discount_total": "0",
        "tax_total": "0",
        "shipping_total": "0",
        "items-TOTAL_FORMS": "1",
        "items-INITIAL_FORMS": "0",
        "items-0-position": "0",
        "items-0-sku": "RING-18K-SOL",
        "items-0-name": "18k Solitaire Ring",
        "items-0-quantity": "2",
        "items-0-unit_price": "398.00",
        "items-0-attributes": "{}",
    }
    for prefix in ("status_history", "payments", "shipments"):
        form.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})

    response = staff_session.post("/admin/orders/order/add/", form)

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    order = Order.objects.get()
    assert _pushed() == [("order.placed", order.pk)]
    (entry,) = send_all()
    assert entry.status == "sent", entry.last_error
    (invoice,) = invoices_numbered(qb_sandbox, order.number)
    assert Decimal(str(invoice["TotalAmt"])) == Decimal("796.00")


def test_marking_an_order_paid_in_the_admin_pushes_order_paid_once(qb, staff_session):
    from orders.tests.test_admin import _order_form

    configure(qb, {"event": "order.paid", "resource": "sales_receipts"})
    order = order_placed()
    url = f"/admin/orders/order/{order.pk}/change/"

    paid = staff_session.post(url, _order_form(order, payment_status="paid"))
    order.refresh_from_db()
    again = staff_session.post(url, _order_form(order, notes="Gift wrapped"))

    assert (paid.status_code, again.status_code) == (302, 302)
    assert _pushed() == [("order.paid", order.pk)]


def test_customers_created_and_edited_in_the_admin_are_pushed(qb, staff_session):
    configure(
        qb,
        {"event": "customer.created", "resource": "customers"},
        {"event": "customer.updated", "resource": "customers"},
    )
    form = {"name": "Audrey Hepburn", "email": "audrey@example.com", "phone": "", "addresses": "[]", "tags": "[]"}
    form.update({"marketing_consent_source": "", "notes": ""})

    created = staff_session.post("/admin/orders/customer/add/", form)
    customer = Customer.objects.get()
    edited = staff_session.post(f"/admin/orders/customer/{customer.pk}/change/", {**form, "phone": "+1 555 0100"})

    assert (created.status_code, edited.status_code) == (302, 302)
    assert [event for event, _ in _pushed()] == ["customer.created", "customer.updated"]
