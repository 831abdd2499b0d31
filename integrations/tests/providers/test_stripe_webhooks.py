"""Stripe webhook signatures, parsing and handlers (`shared/providers/stripe.md` §6-§8)."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from integrations.errors import BadRecordError, TransientError
from integrations.providers.base import Connection, InboundEvent, WebhookSignatureError
from integrations.providers.registry import get_provider
from integrations.providers.stripe import webhooks
from integrations.records import CustomerRecord, PaymentRecord
from integrations.sandbox.server import SandboxApp, SandboxResponse
from integrations.sandbox.signing import encode, sign_stripe
from integrations.sandbox.testing import sandbox_connection

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
SECRET = "whsec_test_secret"
# stripe-python's DUMMY_WEBHOOK_PAYLOAD: four lines joined with LF, two-space indent, no trailing newline.
SDK_PAYLOAD = "\n".join(
    [
        "{",
        '  "id": "evt_test_webhook",',
        '  "object": "event",',
        '  "data": { "object": { "id": "rdr_123", "object": "terminal.reader" } }',
        "}",
    ]
).encode()
SDK_V1_AT_12345 = "07b1ede164afb7b5de91267ffa656f568c65d6e0783ce0ac55ee094643578eda"
SDK_V1_AT_1700000000 = "3bfab77baf5f7b6991a46c9b53b6547d7afc56148b10468fcad9f35c1992ffbd"
ONE_LINE_BODY = b'{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}'
ONE_LINE_V1 = "67da5088c63e080c71bd2bb0cb5c03d85a8fc6a21ce3aaf484df809654745b92"


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def verify(header: str | None, body: bytes = SDK_PAYLOAD, *, secrets=(SECRET,), now: int = 1700000000) -> None:
    headers = {} if header is None else {"Stripe-Signature": header}
    webhooks.verify(headers=headers, body=body, secrets=list(secrets), now=at(now))


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def connection(**config) -> Connection:
    return Connection(
        integration_id="0b7c8f0e-0000-4000-8000-000000000001",
        base_url="https://api.stripe.com",
        config=config,
        credentials={"api_key": "sk_test_x"},
        rate_limit_key="test",
    )


# --- signature vectors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "body", "expected"),
    [
        ("12345", SDK_PAYLOAD, SDK_V1_AT_12345),
        ("1700000000", SDK_PAYLOAD, SDK_V1_AT_1700000000),
        ("1700000000", ONE_LINE_BODY, ONE_LINE_V1),
    ],
)
def test_signature_matches_the_sdk_vectors(timestamp, body, expected):
    assert webhooks.compute_signature(secret=SECRET, timestamp=timestamp, body=body) == expected


def test_sdk_header_verifies_when_now_is_its_timestamp():
    verify(f"t=12345,v1={SDK_V1_AT_12345}", now=12345)


def test_sandbox_signer_produces_the_sdk_header():
    assert sign_stripe(SDK_PAYLOAD, SECRET, 12345) == f"t=12345,v1={SDK_V1_AT_12345}"


def test_one_line_vector_verifies():
    verify(f"t=1700000000,v1={ONE_LINE_V1}", ONE_LINE_BODY)


def test_timestamp_within_tolerance_is_accepted():
    verify(f"t=1700000000,v1={SDK_V1_AT_1700000000}", now=1700000000 + 300)


def test_future_timestamp_is_accepted_like_the_sdk():
    verify(f"t=1700000000,v1={SDK_V1_AT_1700000000}", now=1700000000 - 3600)


# --- negative cases -------------------------------------------------------------------------------------------------


def test_timestamp_older_than_tolerance_is_rejected():
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify(f"t=1700000000,v1={SDK_V1_AT_1700000000}", now=1700000000 + 301)


def test_tampered_body_is_rejected():
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify(f"t=1700000000,v1={SDK_V1_AT_1700000000}", SDK_PAYLOAD.replace(b"rdr_123", b"rdr_124"))


def test_wrong_secret_is_rejected():
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify(f"t=1700000000,v1={SDK_V1_AT_1700000000}", secrets=["whsec_other_secret"])


def test_secret_without_its_whsec_prefix_does_not_verify():
    header = sign_stripe(SDK_PAYLOAD, "test_secret", 1700000000)
    with pytest.raises(WebhookSignatureError):
        verify(header)


def test_changed_timestamp_is_rejected():
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify(f"t=1700000001,v1={SDK_V1_AT_1700000000}")


def test_missing_header_is_rejected():
    with pytest.raises(WebhookSignatureError, match="missing"):
        verify(None)


def test_unparseable_header_is_rejected():
    with pytest.raises(WebhookSignatureError, match="no timestamp"):
        verify("bad_header")


def test_header_with_only_v0_is_rejected():
    with pytest.raises(WebhookSignatureError, match="no v1"):
        verify(f"t=1700000000,v0={SDK_V1_AT_1700000000}")


@pytest.mark.parametrize(
    "header",
    [
        f"t=1700000000,v1={SDK_V1_AT_1700000000},v1=bad_signature",
        f"t=1700000000,v1=bad_signature,v1={SDK_V1_AT_1700000000}",
        f"t=1700000000,v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39,v1={SDK_V1_AT_1700000000}",
    ],
)
def test_a_good_v1_beside_bad_or_other_signatures_is_accepted(header):
    verify(header)


def test_previous_secret_is_accepted_during_rotation():
    header = sign_stripe(SDK_PAYLOAD, SECRET, 1700000000)
    verify(header, secrets=["whsec_new_secret", SECRET])


def test_header_name_is_case_insensitive():
    webhooks.verify(
        headers={"stripe-signature": f"t=1700000000,v1={SDK_V1_AT_1700000000}"},
        body=SDK_PAYLOAD,
        secrets=[SECRET],
        now=at(1700000000),
    )


def test_non_ascii_signature_is_rejected_not_crashing():
    with pytest.raises(WebhookSignatureError):
        verify("t=1700000000,v1=ünïcode")


# --- parsing --------------------------------------------------------------------------------------------------------


def test_parse_reads_id_type_and_created():
    event = webhooks.parse(body=fixture("payment_intent.succeeded"))
    assert (event.event_id, event.event_type, event.occurred_at, event.group_id) == (
        "evt_3Q1aBc2eZvKYlo2C0xYz1234",
        "payment_intent.succeeded",
        datetime(2024, 5, 29, 16, 26, 40, tzinfo=UTC),
        "",
    )
    assert event.payload["data"]["object"]["id"] == "pi_3Q1aBc2eZvKYlo2C0abc1234"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "charge.succeeded"}', "no id"),
        (b'{"id": "evt_1"}', "no type"),
    ],
)
def test_parse_refuses_bodies_it_cannot_use(body, message):
    with pytest.raises(ValueError, match=message):
        webhooks.parse(body=body)


# --- handlers -------------------------------------------------------------------------------------------------------


def handle(name: str, conn: Connection | None = None):
    event = webhooks.parse(body=fixture(name))
    table = webhooks.handlers(client_factory=lambda c: pytest.fail("no provider call expected"))
    return table[event.event_type](event, conn or connection())


def test_handler_table_covers_the_issue_types():
    assert sorted(webhooks.handlers(client_factory=lambda c: None)) == [
        "charge.dispute.created",
        "charge.refunded",
        "charge.succeeded",
        "customer.created",
        "customer.updated",
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
    ]


def test_payment_intent_succeeded_gives_a_captured_payment_linked_to_its_order():
    outcome = handle("payment_intent.succeeded")
    assert outcome.resource == "payment_intents"
    assert outcome.records == [
        PaymentRecord(
            external_id="pi_3Q1aBc2eZvKYlo2C0abc1234",
            source_updated_at=datetime(2024, 5, 29, 16, 26, 40, tzinfo=UTC),
            provider="stripe",
            amount=Decimal("1250.00"),
            currency="USD",
            status="captured",
            method="",
            captured_amount=Decimal("1250.00"),
            refunded_amount=Decimal("0"),
            order_reference="J-1042",
            customer_external_id="cus_QaBcDeFgHiJkLm",
        )
    ]


def test_payment_intent_payment_failed_gives_a_failed_payment():
    outcome = handle("payment_intent.payment_failed")
    assert outcome.records == [
        PaymentRecord(
            external_id="pi_3Q1aBc2eZvKYlo2C0abc2001",
            source_updated_at=datetime(2024, 5, 29, 16, 31, 40, tzinfo=UTC),
            provider="stripe",
            amount=Decimal("489.00"),
            currency="EUR",
            status="failed",
            captured_amount=Decimal("0"),
            refunded_amount=Decimal("0"),
            order_reference="1007",
            customer_external_id="",
        )
    ]


def test_charge_succeeded_updates_the_payment_of_its_payment_intent():
    outcome = handle("charge.succeeded")
    assert outcome.resource == "charges"
    assert outcome.records == [
        PaymentRecord(
            external_id="pi_3Q1aBc2eZvKYlo2C0abc1234",
            source_updated_at=datetime(2024, 5, 29, 16, 26, 41, tzinfo=UTC),
            provider="stripe",
            amount=Decimal("1250.00"),
            currency="USD",
            status="captured",
            method="card",
            captured_amount=Decimal("1250.00"),
            refunded_amount=Decimal("0"),
            order_reference="",
            customer_external_id="cus_QaBcDeFgHiJkLm",
        )
    ]


def test_charge_refunded_gives_a_partially_refunded_payment():
    outcome = handle("charge.refunded")
    assert outcome.records == [
        PaymentRecord(
            external_id="pi_3Q1aBc2eZvKYlo2C0abc1234",
            source_updated_at=datetime(2024, 5, 30, 20, 13, 21, tzinfo=UTC),
            provider="stripe",
            amount=Decimal("1250.00"),
            currency="USD",
            status="partially_refunded",
            method="card",
            captured_amount=Decimal("1250.00"),
            refunded_amount=Decimal("250.00"),
            order_reference="J-1042",
            customer_external_id="cus_QaBcDeFgHiJkLm",
        )
    ]


def test_configured_order_reference_keys_replace_the_defaults():
    outcome = handle("payment_intent.succeeded", connection(order_reference_keys=["crm_ref", "jewelia_order"]))
    assert outcome.records[0].order_reference == "J-1042"
    outcome = handle("charge.refunded", connection(order_reference_keys=["crm_ref"]))
    assert outcome.records[0].order_reference == ""


def test_customer_created_gives_a_customer():
    outcome = handle("customer.created")
    assert outcome.resource == "customers"
    assert outcome.records == [
        CustomerRecord(
            external_id="cus_QaBcDeFgHiJkLm",
            source_updated_at=datetime(2024, 5, 29, 13, 40, tzinfo=UTC),
            name="Ada Lovelace",
            email="ada@example.com",
            phone="",
            addresses=[],
        )
    ]


def test_customer_updated_gives_billing_and_shipping_addresses():
    outcome = handle("customer.updated")
    assert outcome.records == [
        CustomerRecord(
            external_id="cus_QaBcDeFgHiJkLm",
            source_updated_at=datetime(2024, 5, 30, 6, 20, tzinfo=UTC),
            name="Ada King",
            email="ada.lovelace@example.com",
            phone="+442079460000",
            addresses=[
                {
                    "kind": "billing",
                    "line1": "12 St James's Square",
                    "line2": "Flat 3",
                    "city": "London",
                    "region": "",
                    "postal_code": "SW1Y 4JH",
                    "country": "GB",
                },
                {
                    "kind": "shipping",
                    "line1": "Ockham Park",
                    "line2": "",
                    "city": "Ockham",
                    "region": "Surrey",
                    "postal_code": "GU23 6NX",
                    "country": "GB",
                },
            ],
        )
    ]


def test_handler_refuses_an_event_carrying_the_wrong_object():
    event = InboundEvent(
        event_id="evt_x",
        event_type="charge.succeeded",
        payload={"data": {"object": {"id": "cus_1", "object": "customer"}}},
    )
    with pytest.raises(BadRecordError, match="does not carry a charge"):
        webhooks.charge_changed(event, connection())


def test_handler_refuses_an_unknown_currency():
    payload = json.loads(fixture("charge.succeeded"))
    payload["data"]["object"]["currency"] = "xyz"
    event = webhooks.parse(body=json.dumps(payload).encode())
    with pytest.raises(BadRecordError, match="unknown currency"):
        webhooks.charge_changed(event, connection())


# --- handlers that read from Stripe, and signed deliveries from the sandbox --------------------------------------


@pytest.fixture
def stripe_sandbox(make_stripe_sandbox):
    return make_stripe_sandbox(now=lambda: 1_800_000_000)


@pytest.fixture
def sandbox_conn(stripe_sandbox):
    provider = get_provider("stripe")
    return sandbox_connection(
        provider, config=stripe_sandbox.config(), credentials=stripe_sandbox.credentials(), rate_limiting=False
    )


def test_dispute_created_reads_the_charge_back_and_notes_the_dispute(stripe_sandbox, sandbox_conn):
    customer = stripe_sandbox.all("customers")[0]["id"]
    intent = stripe_sandbox.add_payment(amount=76000, customer=customer, metadata={"jewelia_order": "J-000321"})
    stripe_sandbox.dispute(intent["id"], reason="product_not_received", at=1_800_000_100)
    raw_event = stripe_sandbox.events("charge.dispute.created")[0]  # newest first: this one
    stripe_sandbox.clear_requests()
    event = webhooks.parse(body=encode(raw_event))

    outcome = get_provider("stripe").webhook_handlers()["charge.dispute.created"](event, sandbox_conn)

    assert [(r.path, r.raw_query) for r in stripe_sandbox.requests] == [
        (f"/v1/charges/{intent['latest_charge']}", "expand%5B%5D=payment_intent")
    ]
    assert outcome.resource == "charges"
    assert outcome.records == [
        PaymentRecord(
            external_id=intent["id"],
            source_updated_at=datetime.fromtimestamp(1_800_000_100, tz=UTC),
            provider="stripe",
            amount=Decimal("760.00"),
            currency="USD",
            status="captured",
            method="card",
            captured_amount=Decimal("760.00"),
            refunded_amount=Decimal("0"),
            order_reference="J-000321",
            customer_external_id=customer,
        )
    ]
    dispute_id = raw_event["data"]["object"]["id"]
    assert outcome.note == (
        f"dispute {dispute_id} opened on {intent['latest_charge']} for 760.00 USD"
        " (reason: product_not_received, status: needs_response)"
    )


def test_dispute_created_is_transient_when_stripe_cannot_be_read(stripe_sandbox, sandbox_conn, fake_time):
    stripe_sandbox.fail_next(10, status=503)
    event = webhooks.parse(body=fixture("charge.dispute.created"))

    with pytest.raises(TransientError):
        get_provider("stripe").webhook_handlers()["charge.dispute.created"](event, sandbox_conn)


class Receiver(SandboxApp):
    """A stand-in webhook endpoint: records what arrives and answers 200."""

    name = "receiver"

    def __init__(self):
        super().__init__()
        self.route("POST", r"/hooks", lambda request: SandboxResponse(200, {"ok": True}))


def test_the_sandbox_delivers_its_events_signed_as_stripe_does(stripe_sandbox):
    receiver = Receiver().start()
    try:
        responses = stripe_sandbox.deliver_events(f"{receiver.url}/hooks", events=stripe_sandbox.events()[:5])
    finally:
        receiver.stop()

    assert [r.status_code for r in responses] == [200] * 5
    for request, event in zip(receiver.requests, stripe_sandbox.events()[:5], strict=True):
        assert request.header("content-type") == "application/json; charset=utf-8"
        assert request.header("stripe-signature").startswith("t=1800000000,v1=")
        webhooks.verify(
            headers=request.headers,
            body=request.body,
            secrets=[stripe_sandbox.webhook_secret],
            now=datetime.fromtimestamp(1_800_000_000, tz=UTC),
        )
        assert webhooks.parse(body=request.body).event_id == event["id"]
