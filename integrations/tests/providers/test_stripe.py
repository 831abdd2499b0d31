"""The Stripe provider against its sandbox: requests, pagination, the Events feed, retries, idempotent writes,
transforms, the shared contract, and full/incremental syncs through the engine (`shared/providers/stripe.md`)."""

import dataclasses
import logging
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest

from integrations.errors import AuthError, BadRecordError, PermanentError, TransientError
from integrations.providers.registry import get_provider
from integrations.providers.stripe import mappers
from integrations.providers.stripe.client import (
    API_VERSION,
    LIVE_RATE_LIMIT,
    TEST_RATE_LIMIT,
    StripeClient,
    form_encode,
)
from integrations.records import PaymentRecord
from integrations.sandbox.stripe import DAY
from integrations.sandbox.testing import sandbox_connection
from integrations.tests.providers.contract import ProviderContract, read_all

NOW = int(time.time())  # the sandbox's "now", fixed for a test module: generated history is the 20 days before it
PAGE = 5


@pytest.fixture
def sandbox(make_stripe_sandbox):
    return make_stripe_sandbox(now=lambda: NOW)


@pytest.fixture
def provider():
    return get_provider("stripe")


def connect(provider, sandbox, **config):
    config.setdefault("page_size", PAGE)
    return sandbox_connection(
        provider, config=sandbox.config(**config), credentials=sandbox.credentials(), rate_limiting=False
    )


@pytest.fixture
def connection(provider, sandbox):
    return connect(provider, sandbox)


def query(request) -> list[tuple[str, str]]:
    return parse_qsl(request.raw_query, keep_blank_values=True)


def read_pass(provider, connection, resource, since=None):
    pages, cursor = [], {}
    while True:
        page = provider.fetch_page(connection, resource, cursor=cursor, since=since)
        pages.append(page)
        cursor = page.cursor
        if page.done:
            return pages


def records_of(provider, connection, resource, pages):
    return [r for page in pages for raw in page.records for r in provider.transform(resource, raw, connection)]


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def just_now(value: datetime | None) -> bool:
    """A time read from the sandbox's `Date` header (the real clock)."""
    return value is not None and abs((datetime.now(UTC) - value).total_seconds()) < 60


# --- the shared contract ---------------------------------------------------------------------------------------------


class TestStripeContract(ProviderContract):
    @pytest.fixture
    def connection(self, provider, sandbox):
        return connect(provider, sandbox, page_size=2)

    @pytest.fixture
    def rejected_connection(self, provider, sandbox):
        return sandbox_connection(
            provider,
            config=sandbox.config(),
            credentials={"api_key": "sk_test_revoked_0000000000"},
            rate_limiting=False,
        )

    @pytest.fixture
    def bad_records(self):
        intent = {"id": "pi_bad", "object": "payment_intent", "amount": 100, "currency": "usd", "status": "weird"}
        charge = {"id": "ch_bad", "object": "charge", "amount": "a lot", "currency": "usd", "payment_intent": None}
        return {
            "customers": {"id": "cus_bad", "object": "customer", "email": ["not", "text"], "created": "yesterday"},
            "payment_intents": intent,
            "charges": charge,
            "refunds": {"id": "re_bad", "object": "refund", "amount": 5, "charge": "ch_not_expanded"},
        }


# --- requests and pagination ----------------------------------------------------------------------------------------


def test_every_call_sends_the_key_as_bearer_and_the_pinned_version(provider, connection, sandbox):
    provider.fetch_page(connection, "customers", cursor={}, since=None)

    request = sandbox.requests[-1]
    assert request.header("authorization") == f"Bearer {sandbox.api_key}"
    assert request.header("stripe-version") == API_VERSION == "2024-06-20"


def test_a_full_pass_reads_every_object_following_starting_after(provider, connection, sandbox):
    pages = read_pass(provider, connection, "payment_intents")

    assert [len(p.records) for p in pages] == [5, 5, 5, 5, 4]
    assert [r["id"] for p in pages for r in p.records] == [o["id"] for o in sandbox.all("payment_intents")]
    calls = sandbox.requests_to("^/v1/payment_intents$")
    assert query(calls[0]) == [("expand[]", "data.latest_charge"), ("limit", "5")]
    assert query(calls[1]) == [
        ("expand[]", "data.latest_charge"),
        ("limit", "5"),
        ("starting_after", pages[0].records[-1]["id"]),
    ]
    assert not sandbox.requests_to("^/v1/events")


def test_list_expansions_give_complete_payments(provider, connection, sandbox):
    charges = read_pass(provider, connection, "charges")[0].records
    refunds = read_pass(provider, connection, "refunds")[0].records

    assert all(isinstance(c["payment_intent"], dict) for c in charges)
    assert all(isinstance(r["charge"]["payment_intent"], dict) for r in refunds)


def test_page_size_defaults_to_stripes_maximum(provider, sandbox):
    provider.fetch_page(connect(provider, sandbox, page_size=None), "customers", cursor={}, since=None)

    assert ("limit", "100") in query(sandbox.requests[-1])


def test_the_high_watermark_is_the_pass_start_on_stripes_clock(provider, connection, sandbox):
    pages = read_pass(provider, connection, "payment_intents")

    watermarks = {p.high_watermark for p in pages}
    assert len(watermarks) == 1
    (watermark,) = watermarks
    assert abs((watermark - datetime.now(UTC)).total_seconds()) < 60  # the sandbox's Date header is real time


def test_a_pass_resumes_from_a_saved_cursor_without_repeating_records(provider, connection, sandbox):
    first = provider.fetch_page(connection, "charges", cursor={}, since=None)
    rest = read_pass_from(provider, connection, "charges", first.cursor)

    ids = [r["id"] for r in first.records] + [r["id"] for p in rest for r in p.records]
    assert ids == [c["id"] for c in sandbox.all("charges")]


def read_pass_from(provider, connection, resource, cursor, since=None):
    pages = []
    while True:
        page = provider.fetch_page(connection, resource, cursor=cursor, since=since)
        pages.append(page)
        cursor = page.cursor
        if page.done:
            return pages


# --- incremental passes: created[gte] and the Events feed ------------------------------------------------------------


def test_an_incremental_pass_reads_events_then_new_objects_since_the_watermark(provider, connection, sandbox):
    since = at(NOW - 2 * DAY)

    read_pass(provider, connection, "charges", since=since)

    events_call = sandbox.requests_to("^/v1/events$")[0]
    assert query(events_call) == [
        ("types[]", "charge.succeeded"),
        ("types[]", "charge.failed"),
        ("types[]", "charge.refunded"),
        ("types[]", "charge.dispute.created"),
        ("types[]", "charge.dispute.updated"),
        ("types[]", "charge.dispute.closed"),
        ("created[gte]", str(NOW - 2 * DAY)),
        ("limit", "5"),
    ]
    list_call = sandbox.requests_to("^/v1/charges$")[0]
    assert query(list_call) == [
        ("created[gte]", str(NOW - 2 * DAY)),
        ("expand[]", "data.payment_intent"),
        ("limit", "5"),
    ]
    assert sandbox.requests.index(events_call) < sandbox.requests.index(list_call)


def test_a_refund_of_an_old_payment_is_picked_up_by_the_next_incremental_pass(provider, connection, sandbox):
    old = sandbox.all("payment_intents")[-1]  # created 20 days ago, long before the last sync
    assert old["status"] == "succeeded"
    sandbox.refund(old["id"], amount=10000, at=NOW - 60)

    records = records_of(provider, connection, "charges", read_pass(provider, connection, "charges", at(NOW - 3600)))

    assert records == [
        PaymentRecord(
            external_id=old["id"],
            source_updated_at=at(NOW - 60),
            provider="stripe",
            amount=Decimal("398.00"),
            currency="USD",
            status="partially_refunded",
            method="card",
            captured_amount=Decimal("398.00"),
            refunded_amount=Decimal("100.00"),
            order_reference="",
            customer_external_id=old["customer"] or "",
        )
    ]


def test_a_customer_change_arrives_as_a_versioned_record_from_the_events_feed(provider, connection, sandbox):
    customer = sandbox.all("customers")[-1]
    sandbox.update_customer(customer["id"], name="Ada King", at=NOW - 30)

    records = records_of(provider, connection, "customers", read_pass(provider, connection, "customers", at(NOW - 600)))

    assert [(r.external_id, r.name, r.source_updated_at) for r in records] == [
        (customer["id"], "Ada King", at(NOW - 30))
    ]


def test_refund_and_dispute_events_are_replaced_by_their_charge_read_back_once(provider, connection, sandbox):
    intent = sandbox.all("payment_intents")[-1]
    refund = sandbox.refund(intent["id"], amount=5000, at=NOW - 120)
    sandbox.fail_refund(refund["id"], at=NOW - 60)  # refund.failed and charge.refund.updated: two pointers
    sandbox.clear_requests()

    pages = read_pass(provider, connection, "refunds", at(NOW - 600))

    charge_reads = sandbox.requests_to(f"^/v1/charges/{intent['latest_charge']}$")
    assert len(charge_reads) == 1
    assert query(charge_reads[0]) == [("expand[]", "payment_intent")]
    records = records_of(provider, connection, "refunds", pages)
    # The refund list still shows the (failed) refund with its charge: both say nothing is refunded now.
    assert {(r.external_id, r.status, r.refunded_amount) for r in records} == {(intent["id"], "captured", Decimal("0"))}
    assert all(just_now(r.source_updated_at) for r in records)


def test_events_older_than_the_window_are_not_asked_for_and_a_full_resync_is_advised(
    provider, connection, sandbox, caplog
):
    caplog.set_level(logging.WARNING)
    old = sandbox.all("payment_intents")[-1]
    sandbox.refund(old["id"], amount=10000, at=NOW - 60)

    pages = read_pass(provider, connection, "refunds", since=datetime.now(UTC) - timedelta(days=40))

    assert not sandbox.requests_to("^/v1/events")
    assert "older than the Events API window" in caplog.text
    # Refunds are objects of their own: one created since the last sync still reaches its old payment.
    records = records_of(provider, connection, "refunds", pages)
    assert (old["id"], Decimal("100.00")) in {(r.external_id, r.refunded_amount) for r in records}


def test_event_records_carry_the_event_time_so_older_versions_never_win(provider, connection, sandbox):
    intent = sandbox.all("payment_intents")[-1]
    sandbox.refund(intent["id"], amount=5000, at=NOW - 120)
    sandbox.refund(intent["id"], amount=5000, at=NOW - 60)

    pages = read_pass(provider, connection, "charges", at(NOW - 600))
    events = [raw for raw in pages[0].records if raw.get("object") == "event"]

    versions = [provider.transform("charges", raw, connection)[0] for raw in events]
    assert [(v.refunded_amount, v.source_updated_at) for v in versions] == [
        (Decimal("100.00"), at(NOW - 60)),  # newest first, as Stripe lists them
        (Decimal("50.00"), at(NOW - 120)),
    ]


# --- transforms -----------------------------------------------------------------------------------------------------


def payment_by_outcome(provider, connection, sandbox):
    records = records_of(provider, connection, "payment_intents", read_pass(provider, connection, "payment_intents"))
    return {r.external_id: r for r in records}


def test_listed_records_are_stamped_with_the_time_they_were_read(provider, connection, sandbox):
    records = payment_by_outcome(provider, connection, sandbox)

    assert all(just_now(r.source_updated_at) for r in records.values())
    assert sorted(r.status for r in records.values()) == sorted(
        ["captured"] * 10 + ["partially_refunded"] * 4 + ["refunded"] * 2 + ["failed"] * 2 + ["authorized"] * 2
        + ["voided"] * 2 + ["captured"] * 2  # the disputed ones: the orders domain has no dispute status
    )  # fmt: skip


def test_a_partially_refunded_payment_maps_exactly(provider, connection, sandbox):
    customer = sandbox.all("customers")[0]["id"]
    intent = sandbox.add_payment(amount=125000, customer=customer, metadata={"jewelia_order": "J-001042"})
    sandbox.refund(intent["id"], amount=25000)

    record = payment_by_outcome(provider, connection, sandbox)[intent["id"]]

    assert just_now(record.source_updated_at)
    assert dataclasses.replace(record, source_updated_at=None) == PaymentRecord(
        external_id=intent["id"],
        source_updated_at=None,
        provider="stripe",
        amount=Decimal("1250.00"),
        currency="USD",
        status="partially_refunded",
        method="card",
        captured_amount=Decimal("1250.00"),
        refunded_amount=Decimal("250.00"),
        order_reference="J-001042",
        customer_external_id=customer,
    )


@pytest.mark.parametrize(
    ("outcome", "status", "captured"),
    [
        ("requires_capture", "authorized", "0.00"),
        ("canceled", "voided", "0.00"),
        ("failed", "failed", "0.00"),
        ("processing", "pending", "0.00"),
        ("requires_payment_method", "pending", "0.00"),
        ("succeeded", "captured", "64.00"),
    ],
)
def test_payment_status_follows_the_intent_and_its_charge(provider, connection, sandbox, outcome, status, captured):
    intent = sandbox.add_payment(amount=6400, outcome=outcome, metadata={"order_id": "J-000777"})

    record = payment_by_outcome(provider, connection, sandbox)[intent["id"]]

    assert (record.status, record.captured_amount, record.amount, record.order_reference) == (
        status,
        Decimal(captured),
        Decimal("64.00"),
        "J-000777",
    )


def test_a_charge_without_a_payment_intent_is_a_payment_of_its_own():
    charge = {
        "id": "ch_legacy",
        "object": "charge",
        "amount": 5000,
        "amount_captured": 5000,
        "amount_refunded": 5000,
        "currency": "jpy",
        "payment_intent": None,
        "refunded": True,
        "status": "succeeded",
        "metadata": {"order_number": "J-000042"},
    }

    record = mappers.payment_from_charge(charge, updated_at=None)

    assert (record.external_id, record.amount, record.currency, record.status, record.order_reference) == (
        "ch_legacy",
        Decimal("5000"),
        "JPY",
        "refunded",
        "J-000042",
    )


def test_three_decimal_currencies_use_their_minor_units():
    assert mappers.money(12345, "KWD") == Decimal("12.345")


def test_an_event_of_an_unexpected_object_fails_alone_under_its_payment_id(provider, connection):
    event = {"id": "evt_1", "object": "event", "created": NOW, "data": {"object": {"id": "txn_1", "object": "x"}}}

    with pytest.raises(BadRecordError) as caught:
        provider.transform("charges", event, connection)

    assert caught.value.external_id == "txn_1"


# --- retries, rate limits and errors ---------------------------------------------------------------------------------


def test_a_429_is_retried_with_backoff(provider, connection, sandbox, fake_time):
    sandbox.rate_limit_next()

    page = provider.fetch_page(connection, "customers", cursor={}, since=None)

    assert len(page.records) == PAGE
    assert fake_time.sleeps == [0.25]
    assert [r.fault for r in sandbox.requests] == ["rate_limited", ""]


def test_stripe_should_retry_false_stops_at_once(provider, connection, sandbox, fake_time):
    sandbox.rate_limit_next(should_retry=False)

    with pytest.raises(PermanentError) as caught:
        provider.fetch_page(connection, "customers", cursor={}, since=None)

    assert caught.value.status == 429
    assert len(sandbox.requests) == 1
    assert fake_time.sleeps == []


def test_a_server_error_marked_not_retryable_is_not_retried(provider, connection, sandbox, fake_time):
    sandbox.fail_next(status=500, headers={"Stripe-Should-Retry": "false"})

    with pytest.raises(PermanentError):
        provider.fetch_page(connection, "customers", cursor={}, since=None)

    assert len(sandbox.requests) == 1


@pytest.mark.parametrize("headers", [{}, {"Stripe-Should-Retry": "true"}])
def test_a_409_lock_conflict_is_retried(provider, connection, sandbox, fake_time, headers):
    body = {"error": {"type": "invalid_request_error", "code": "lock_timeout", "message": "Could not lock."}}
    sandbox.fail_next(status=409, body=body, headers=headers)

    page = provider.fetch_page(connection, "customers", cursor={}, since=None)

    assert len(page.records) == PAGE
    assert len(sandbox.requests) == 2


def test_stripe_should_retry_true_retries_an_otherwise_final_error(provider, connection, sandbox, fake_time):
    sandbox.fail_next(status=400, body={"error": {"type": "api_error"}}, headers={"Stripe-Should-Retry": "true"})

    provider.fetch_page(connection, "customers", cursor={}, since=None)

    assert len(sandbox.requests) == 2


def test_a_plain_400_is_final(provider, connection, sandbox, fake_time):
    sandbox.fail_next(status=400, body={"error": {"type": "invalid_request_error", "message": "bad"}})

    with pytest.raises(PermanentError):
        provider.fetch_page(connection, "customers", cursor={}, since=None)

    assert len(sandbox.requests) == 1


def test_persistent_5xx_hands_the_retry_to_the_engine(provider, connection, sandbox, fake_time):
    sandbox.fail_next(10, status=503)

    with pytest.raises(TransientError) as caught:
        provider.fetch_page(connection, "customers", cursor={}, since=None)

    assert len(sandbox.requests) == 4
    assert fake_time.sleeps == [0.25, 0.5, 1.0]
    assert caught.value.retry_after == 2.0


def test_a_malformed_body_is_retried(provider, connection, sandbox, fake_time):
    sandbox.malformed_next()

    page = provider.fetch_page(connection, "customers", cursor={}, since=None)

    assert len(page.records) == PAGE
    assert [r.fault for r in sandbox.requests] == ["malformed", ""]


def test_a_valid_json_answer_that_is_not_a_list_is_transient(provider, connection, sandbox, fake_time):
    sandbox.fail_next(status=200, body={"object": "customer", "id": "cus_x"})

    with pytest.raises(TransientError, match="did not answer with a list"):
        provider.fetch_page(connection, "customers", cursor={}, since=None)


def test_a_rejected_key_is_an_auth_error_without_a_refresh(provider, sandbox, fake_time):
    connection = sandbox_connection(
        provider, config=sandbox.config(), credentials={"api_key": "sk_test_nope_12345678"}, rate_limiting=False
    )

    with pytest.raises(AuthError):
        provider.fetch_page(connection, "customers", cursor={}, since=None)

    assert connection.refreshes == 1  # the engine's refresh is asked once; an API key cannot be renewed
    assert len(sandbox.requests) == 1


def test_live_keys_get_the_live_rate_limit(provider, sandbox):
    test_client = StripeClient(connect(provider, sandbox))
    live = connect(provider, sandbox)
    live.credentials = {"api_key": "rk_live_abc"}

    assert (test_client.rate_limit, StripeClient(live).rate_limit) == (TEST_RATE_LIMIT, LIVE_RATE_LIMIT)
    assert (TEST_RATE_LIMIT.requests, LIVE_RATE_LIMIT.requests) == (25, 100)


def test_the_sandboxs_own_rate_limit_is_waited_out(provider, make_stripe_sandbox, fake_time):
    sandbox = make_stripe_sandbox(rate_limit=True, per_second=2, clock=fake_time.monotonic, now=lambda: NOW)
    client = StripeClient(connect(provider, sandbox))

    for _ in range(3):
        client.list_page("/v1/customers", limit=1)

    assert len(sandbox.requests) == 6  # the third call was refused three times within the same second
    assert fake_time.sleeps == [0.25, 0.5, 1.0]


# --- writes and idempotency -----------------------------------------------------------------------------------------


def test_a_write_carries_an_idempotency_key_and_form_encoding(provider, connection, sandbox):
    intent = sandbox.all("payment_intents")[0]
    client = provider.client(connection)

    refund = client.create("/v1/refunds", {"payment_intent": intent["id"], "amount": 1000, "metadata": {"a": "b"}})

    request = sandbox.requests[-1]
    assert len(request.header("idempotency-key")) == 36
    assert parse_qsl(request.body.decode()) == [
        ("payment_intent", intent["id"]),
        ("amount", "1000"),
        ("metadata[a]", "b"),
    ]
    assert refund["amount"] == 1000


def test_a_retried_write_is_applied_once(provider, connection, sandbox, fake_time):
    intent = sandbox.all("payment_intents")[0]
    refunds_before = len(sandbox.all("refunds"))
    sandbox.lose_response_next()

    refund = provider.client(connection).create("/v1/refunds", {"payment_intent": intent["id"], "amount": 1000})

    posts = sandbox.requests_to("^/v1/refunds$")
    assert [r.fault for r in posts] == ["response_lost", ""]
    assert posts[0].header("idempotency-key") == posts[1].header("idempotency-key")
    assert len(sandbox.all("refunds")) == refunds_before + 1
    assert refund["id"] == sandbox.all("refunds")[0]["id"]


def test_the_same_key_replays_the_first_answer(provider, connection, sandbox):
    client = provider.client(connection)

    first = client.create("/v1/customers", {"email": "new@example.com"}, idempotency_key="outbox-17")
    again = client.create("/v1/customers", {"email": "new@example.com"}, idempotency_key="outbox-17")

    assert first == again
    assert [c["email"] for c in sandbox.all("customers")].count("new@example.com") == 1


def test_a_key_reused_with_other_parameters_is_refused(provider, connection, sandbox):
    client = provider.client(connection)
    client.create("/v1/customers", {"email": "one@example.com"}, idempotency_key="k-1")

    with pytest.raises(PermanentError) as caught:
        client.create("/v1/customers", {"email": "two@example.com"}, idempotency_key="k-1")

    assert caught.value.status == 400


def test_form_encoding_uses_stripes_brackets():
    assert form_encode({"created": {"gte": 5}, "expand": ["a", "b"], "x": None, "flag": True}) == [
        ("created[gte]", "5"),
        ("expand[]", "a"),
        ("expand[]", "b"),
        ("flag", "true"),
    ]


# --- single records ---------------------------------------------------------------------------------------------------


def test_fetch_record_reads_a_payment_through_its_intent(provider, connection, sandbox):
    intent = sandbox.all("payment_intents")[0]

    raw = provider.fetch_record(connection, "charges", intent["id"])

    assert raw["id"] == intent["id"]
    assert isinstance(raw["latest_charge"], dict)
    assert provider.transform("charges", raw, connection)[0].external_id == intent["id"]


def test_fetch_record_of_a_vanished_object_is_none(provider, connection, sandbox):
    assert provider.fetch_record(connection, "customers", "cus_gone") is None
    assert provider.fetch_record(connection, "payment_intents", "unknown") is None


def test_read_all_of_the_contract_covers_every_resource(provider, sandbox):
    connection = connect(provider, sandbox, page_size=100)

    assert {
        r.name: sum(len(p.records) for p in read_all(provider, connection, r.name)) for r in provider.resources
    } == {
        "customers": 8,
        "payment_intents": 24,
        "charges": 24,
        "refunds": 6,
    }


# --- through the sync engine ------------------------------------------------------------------------------------------


@pytest.fixture
def live_sandbox(make_stripe_sandbox):
    """A sandbox on the real clock: the engine's watermarks come from its `Date` header."""
    return make_stripe_sandbox(now=lambda: int(time.time()))


@pytest.fixture
def stripe_integration(db, live_sandbox, settings):
    from integrations.services import integration_create
    from jewelia.core.actors import Actor

    settings.INTEGRATIONS_RATE_LIMITING = False
    return integration_create(
        actor=Actor("user", "1", "staff"),
        name="Stripe payments",
        provider="stripe",
        config=live_sandbox.config(page_size=10),
        credentials=live_sandbox.credentials(),
        status="active",
    )


def test_a_full_sync_writes_one_payment_per_payment_intent_and_links_orders(stripe_integration, live_sandbox, run_sync):
    from orders.models import Customer, Order, Payment

    order = Order.objects.create(number="J-000002", currency="USD")

    run = run_sync(stripe_integration)

    assert run.status == "succeeded"
    assert run.counts == {"fetched": 62, "created": 32, "updated": 0, "unchanged": 30, "deleted": 0, "failed": 0}
    assert Customer.objects.count() == 8
    assert Payment.objects.count() == 24
    payment = Payment.objects.get(order=order)
    second = live_sandbox.all("payment_intents")[-2]  # the second payment generated: J-000002, partly refunded
    assert (payment.external_id, payment.status, payment.amount, payment.refunded_amount) == (
        second["id"],
        "partially_refunded",
        Decimal("1250.000"),
        Decimal("312.500"),
    )


def test_a_second_sync_changes_nothing(stripe_integration, run_sync):
    run_sync(stripe_integration)

    run = run_sync(stripe_integration)

    assert run.status == "succeeded"
    assert run.counts == {"fetched": 0, "created": 0, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}


def test_an_incremental_sync_applies_a_refund_made_to_an_old_payment(stripe_integration, live_sandbox, run_sync):
    from orders.models import Payment

    run_sync(stripe_integration)
    oldest = live_sandbox.all("payment_intents")[-1]
    live_sandbox.refund(oldest["id"], amount=39800)

    run = run_sync(stripe_integration)

    assert run.status == "succeeded"
    # Three reads of one payment: the charge.refunded event, and the refund's charge read back and listed. The
    # event's charge lacks the intent's metadata (order reference) that the read-backs carry, so two differ.
    assert (run.fetched, run.created, run.updated, run.unchanged) == (3, 0, 2, 1)
    assert Payment.objects.count() == 24
    payment = Payment.objects.get(external_id=oldest["id"])
    assert (payment.status, payment.refunded_amount) == ("refunded", Decimal("398.000"))
