"""QuickBooks webhooks: the fact sheet's signature vectors in both formats, parsing of legacy and CloudEvents bodies
into changes, one delivery with many changes, the handler that reads each changed entity from the sandbox, and the
app-level hooks (verifier tokens from settings, a delivery split per company, routing by realmId)
(`shared/providers/quickbooks.md` §6, §8)."""

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from integrations.providers.base import WebhookSignatureError
from integrations.providers.quickbooks import webhooks
from integrations.records import CustomerRecord, PaymentRecord
from integrations.sandbox import signing
from integrations.tests.providers import test_quickbooks as qb_fixtures
from integrations.tests.providers.test_quickbooks import qb_connect

# The provider fixture, shared with test_quickbooks.py (the sandbox fixtures come from conftest).
provider = qb_fixtures.provider

FIXTURES = Path(__file__).parent / "fixtures" / "quickbooks"
VERIFIER_TOKEN = "b5771f19b12ddb4bcdb9f08bdc50bc63878a"  # the sheet's §8 vector (Intuit's Java SDK test)
LEGACY_BODY = (FIXTURES / "webhook_legacy.json").read_bytes()
LEGACY_SIGNATURE = "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="
CLOUDEVENTS_BODY = (FIXTURES / "webhook_cloudevents.json").read_bytes()
CLOUDEVENTS_SIGNATURE = "gi91Jz0w18Cr+dW4LKhegTpo3sJe4t5KfeybaFJTK5A="
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def verify(provider, body, signature, secrets=(VERIFIER_TOKEN,)):
    provider.verify_webhook(headers={"intuit-signature": signature}, body=body, secrets=list(secrets), now=NOW)


# --- signature --------------------------------------------------------------------------------------------------------


def test_the_fixture_bodies_are_the_sheets_exact_bytes():
    assert LEGACY_BODY.startswith(b'{"eventNotifications":[{"realmId":"1185883450"') and not LEGACY_BODY.endswith(b"\n")
    assert CLOUDEVENTS_BODY.startswith(b'[{"specversion":"1.0"') and not CLOUDEVENTS_BODY.endswith(b"\n")


@pytest.mark.parametrize(
    ("body", "signature"), [(LEGACY_BODY, LEGACY_SIGNATURE), (CLOUDEVENTS_BODY, CLOUDEVENTS_SIGNATURE)]
)
def test_the_sheets_signature_vectors_verify(provider, body, signature):
    verify(provider, body, signature)


def test_the_sdk_test_signature_1234_is_refused(provider):
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify(provider, LEGACY_BODY, "1234")


def test_a_body_changed_by_one_byte_is_refused(provider):
    with pytest.raises(WebhookSignatureError):
        verify(provider, LEGACY_BODY.replace(b'"id":"1"', b'"id":"2"'), LEGACY_SIGNATURE)


def test_a_delivery_without_the_signature_header_is_refused(provider):
    with pytest.raises(WebhookSignatureError, match="missing intuit-signature"):
        provider.verify_webhook(headers={}, body=LEGACY_BODY, secrets=[VERIFIER_TOKEN], now=NOW)


def test_the_header_name_is_matched_whatever_its_case(provider):
    headers = {"Intuit-Signature": LEGACY_SIGNATURE}

    provider.verify_webhook(headers=headers, body=LEGACY_BODY, secrets=[VERIFIER_TOKEN], now=NOW)


def test_a_signature_made_with_the_client_secret_instead_of_the_verifier_token_is_refused(provider):
    with pytest.raises(WebhookSignatureError):
        verify(provider, LEGACY_BODY, signing.sign_intuit(LEGACY_BODY, "the-client-secret"))


def test_the_previous_verifier_token_still_verifies_during_a_rotation(provider):
    verify(provider, LEGACY_BODY, LEGACY_SIGNATURE, secrets=("new-verifier-token", VERIFIER_TOKEN))


def test_the_sandboxs_signing_agrees_with_the_sheets_vector():
    assert signing.sign_intuit(LEGACY_BODY, VERIFIER_TOKEN) == LEGACY_SIGNATURE


# --- parsing -------------------------------------------------------------------------------------------------------


def test_the_legacy_vector_is_one_customer_created_change_keyed_by_its_fields(provider):
    event = provider.parse_webhook(headers={}, body=LEGACY_BODY)

    key = "legacy:" + hashlib.sha256(b"1185883450|Customer|1|Create|2015-10-05T14:42:19-0700").hexdigest()
    assert (event.event_id, event.event_type, event.occurred_at) == (
        key,
        "qbo.customer.created.v1",
        datetime(2015, 10, 5, 21, 42, 19, tzinfo=UTC),
    )
    assert event.payload == {
        "format": "legacy",
        "changes": [
            {
                "key": key,
                "type": "qbo.customer.created.v1",
                "realm_id": "1185883450",
                "entity": "Customer",
                "entity_id": "1",
                "operation": "created",
                "occurred_at": "2015-10-05T14:42:19-07:00",
            }
        ],
    }


def test_the_cloudevents_vector_is_one_invoice_created_change_keyed_by_its_id(provider):
    event = provider.parse_webhook(headers={}, body=CLOUDEVENTS_BODY)

    assert (event.event_id, event.event_type) == ("88cd52aa-33b6-4351-9aa4-47572edbd068", "qbo.invoice.created.v1")
    assert event.payload["format"] == "cloudevents"
    [change] = event.payload["changes"]
    assert (change["realm_id"], change["entity"], change["entity_id"], change["operation"]) == (
        "310687",
        "Invoice",
        "1234",
        "created",
    )
    assert event.occurred_at == datetime(2025, 9, 10, 21, 31, 25, 179851, tzinfo=UTC)


def test_a_delivery_of_several_changes_gets_an_id_from_its_change_keys_in_any_order(provider):
    events = [
        signing.intuit_cloudevent(realm_id="1", entity="Customer", entity_id="5", event_id="a"),
        signing.intuit_cloudevent(realm_id="1", entity="Payment", entity_id="9", event_id="b", verb="updated"),
    ]

    first = provider.parse_webhook(headers={}, body=signing.encode(events))
    reordered = provider.parse_webhook(headers={}, body=signing.encode(events[::-1]))

    assert first.event_id == reordered.event_id == "delivery:" + hashlib.sha256(b"a\nb").hexdigest()
    assert first.event_type == webhooks.BATCH_TYPE == "qbo.changes.v1"
    assert [c["key"] for c in first.payload["changes"]] == ["a", "b"]


def test_a_legacy_delivery_for_two_companies_lists_every_change(provider):
    invoice = {"realm_id": "1", "name": "Invoice", "id": "7", "operation": "Update"}
    merge = {"realm_id": "2", "name": "Customer", "id": "3", "operation": "Merge", "deleted_id": "4"}
    payload = signing.intuit_legacy_payload(
        [{**invoice, "last_updated": "2026-01-01T10:00:00Z"}, {**merge, "last_updated": "2026-01-01T10:00:01Z"}]
    )

    event = provider.parse_webhook(headers={}, body=signing.encode(payload))

    assert [(c["realm_id"], c["type"]) for c in event.payload["changes"]] == [
        ("1", "qbo.invoice.updated.v1"),
        ("2", "qbo.customer.merged.v1"),
    ]
    assert event.payload["changes"][1]["deleted_id"] == "4"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"id": "evt"}', "neither a CloudEvents array nor an eventNotifications object"),
        (b"[]", "no changes"),
        (b'[{"type": "qbo.invoice.created.v1"}]', "CloudEvent 0 id is missing"),
        (b'[{"id": "x", "type": "invoice.created"}]', "unknown type"),
        (b'[{"id": "x", "type": "qbo.invoice.created.v1", "intuitaccountid": "1", "intuitentityid": "2"}]', "no time"),
        (b'{"eventNotifications": [{"realmId": "1"}]}', "dataChangeEvent.entities is missing"),
    ],
)
def test_a_body_that_cannot_be_understood_is_a_value_error(provider, body, reason):
    with pytest.raises(ValueError, match=reason):
        provider.parse_webhook(headers={}, body=body)


def test_the_handler_table_covers_the_pulled_entities_in_every_verb_and_deliveries(provider):
    table = provider.webhook_handlers()

    assert {"qbo.customer.created.v1", "qbo.invoice.voided.v1", "qbo.payment.deleted.v1", "qbo.changes.v1"} <= set(
        table
    )
    assert "qbo.account.created.v1" not in table
    assert len(set(table.values())) == 1  # one handler: it reads each entity as it is now, whatever the verb


# --- handling against the sandbox -------------------------------------------------------------------------------------


def deliver(provider, sandbox, changes, body_format="cloudevents"):
    """A delivery of the sandbox's logged `changes`, verified and parsed as the receiver would."""
    body, headers = signing.intuit_delivery(sandbox.webhook_payload(changes, body_format=body_format), "token")
    provider.verify_webhook(headers=headers, body=body, secrets=["token"], now=NOW)
    return provider.parse_webhook(headers=headers, body=body)


def handle(provider, event, connection):
    return provider.webhook_handlers()[event.event_type](event, connection)


@pytest.mark.parametrize("body_format", ["cloudevents", "legacy"])
def test_a_customer_change_is_read_back_and_becomes_its_record(provider, qb_sandbox, body_format):
    connection = qb_connect(provider, qb_sandbox)
    created = qb_sandbox.create("Customer", {"DisplayName": "Mae Jemison", "PrimaryEmailAddr": {"Address": "m@j.io"}})
    event = deliver(provider, qb_sandbox, qb_sandbox.changes[-1:], body_format)

    outcome = handle(provider, event, connection)

    assert outcome.resource == "customers" and outcome.note == ""
    assert outcome.records == [
        CustomerRecord(
            external_id=created["Id"],
            source_updated_at=datetime.fromisoformat(created["MetaData"]["LastUpdatedTime"]),
            name="Mae Jemison",
            email="m@j.io",
        )
    ]
    assert qb_sandbox.requests_to(rf"/customer/{created['Id']}$")[-1].method == "GET"


def test_a_payment_change_gives_payments_linked_through_their_invoices(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)
    invoice = next(i for i in qb_sandbox.all("Invoice") if i["DocNumber"].startswith("J-") and i["Balance"])
    qb_sandbox.record_payment([invoice["Id"]], [Decimal("10.00")])
    payment_change = next(c for c in reversed(qb_sandbox.changes) if c["name"] == "Payment")

    outcome = handle(provider, deliver(provider, qb_sandbox, [payment_change]), connection)

    assert outcome.resource == "payments"
    [record] = outcome.records
    assert isinstance(record, PaymentRecord)
    assert (record.external_id, record.amount, record.order_reference) == (
        f"{payment_change['id']}:{invoice['Id']}",
        Decimal("10.00"),
        invoice["DocNumber"],
    )


def test_a_delivery_mixing_entities_gives_all_their_records_under_no_single_resource(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)
    invoice = qb_sandbox.all("Invoice")[0]
    qb_sandbox.create("Customer", {"DisplayName": "Katherine Johnson"})
    qb_sandbox.edit("Invoice", invoice["Id"], PrivateNote="checked")
    event = deliver(provider, qb_sandbox, qb_sandbox.changes[-2:])

    outcome = handle(provider, event, connection)

    assert event.event_type == "qbo.changes.v1"
    assert outcome.resource == ""
    assert [type(r).__name__ for r in outcome.records] == ["CustomerRecord"]  # invoices write nothing yet


def test_changes_of_another_company_or_an_unsynced_entity_are_noted_and_not_read(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)
    events = [
        signing.intuit_cloudevent(realm_id="999", entity="Customer", entity_id="58", event_id="a"),
        signing.intuit_cloudevent(realm_id=qb_sandbox.realm_id, entity="Account", entity_id="7", event_id="b"),
    ]
    event = provider.parse_webhook(headers={}, body=signing.encode(events))
    qb_sandbox.clear_requests()

    outcome = handle(provider, event, connection)

    assert outcome.records == []
    assert outcome.note == "Customer 58 created: company 999 is not this integration's; Account 7 created: not synced"
    assert qb_sandbox.requests == []


def test_a_deleted_entity_is_noted_as_gone(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)
    payment = qb_sandbox.all("Payment")[0]
    qb_sandbox.delete("Payment", payment["Id"])

    outcome = handle(provider, deliver(provider, qb_sandbox, qb_sandbox.changes[-1:], "legacy"), connection)

    assert outcome.records == []
    assert outcome.note == f"Payment {payment['Id']} deleted: QuickBooks no longer has it"


def test_an_event_without_changes_is_a_bad_record(provider, qb_sandbox):
    from integrations.errors import BadRecordError
    from integrations.providers.base import InboundEvent

    event = InboundEvent(event_id="x", event_type="qbo.customer.created.v1", payload={"changes": []})

    with pytest.raises(BadRecordError, match="no changes"):
        handle(provider, event, qb_connect(provider, qb_sandbox))


def test_the_sandbox_delivers_signed_bodies_the_provider_accepts(provider, qb_sandbox):
    captured = {}

    class Session:
        def post(self, url, data, headers, timeout):
            captured.update(url=url, body=data, headers=headers)

    qb_sandbox.deliver_changes(
        "http://127.0.0.1:9/hook", qb_sandbox.changes[:3], body_format="legacy", session=Session()
    )

    verify(provider, captured["body"], captured["headers"]["intuit-signature"], secrets=(qb_sandbox.verifier_token,))
    event = provider.parse_webhook(headers=captured["headers"], body=captured["body"])
    assert [c["entity_id"] for c in event.payload["changes"]] == [c["id"] for c in qb_sandbox.changes[:3]]
    assert json.loads(captured["body"])["eventNotifications"][0]["realmId"] == qb_sandbox.realm_id


# --- app-level webhooks: one URL and verifier token for every connected company ---------------------------------------


def test_quickbooks_declares_app_level_webhooks_verified_with_the_verifier_tokens_setting(provider, settings):
    settings.QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS = ["token-next", "token-current"]

    assert provider.app_webhooks is True
    assert provider.app_webhook_secrets() == ["token-next", "token-current"]


@pytest.mark.parametrize(
    ("value", "secrets"),
    [([], []), (["", " "], []), ("token-a, token-b", ["token-a", "token-b"]), (["same", "same"], ["same"])],
)
def test_the_app_level_secrets_ignore_blanks_and_repeats(provider, settings, value, secrets):
    settings.QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS = value

    assert provider.app_webhook_secrets() == secrets


def test_an_integration_s_account_is_the_realm_id_the_oauth_callback_stored(provider):
    config = provider.oauth_callback_extras({"realmId": "1185883450", "code": "x", "state": "y"})

    assert provider.integration_account_id(config) == "1185883450"
    assert provider.integration_account_id({}) == ""


def _mixed_delivery(provider):
    changes = [
        {"realm_id": "1", "name": "Invoice", "id": "7", "operation": "Update", "last_updated": "2026-01-01T10:00:00Z"},
        {"realm_id": "2", "name": "Customer", "id": "3", "operation": "Create", "last_updated": "2026-01-01T10:00:01Z"},
        {"realm_id": "1", "name": "Payment", "id": "9", "operation": "Create", "last_updated": "2026-01-01T10:00:02Z"},
    ]
    return changes, provider.parse_webhook(headers={}, body=signing.encode(signing.intuit_legacy_payload(changes)))


def test_split_by_account_makes_one_event_per_company_in_first_seen_order(provider):
    _, delivery = _mixed_delivery(provider)

    parts = provider.split_webhook_by_account(delivery)

    assert [provider.webhook_account_id(part) for part in parts] == ["1", "2"]
    assert [[c["entity_id"] for c in part.payload["changes"]] for part in parts] == [["7", "9"], ["3"]]
    assert [part.event_type for part in parts] == [webhooks.BATCH_TYPE, "qbo.customer.created.v1"]
    assert {part.payload["format"] for part in parts} == {"legacy"}


def test_each_company_s_part_is_the_event_its_changes_alone_would_have_been(provider):
    changes, delivery = _mixed_delivery(provider)
    alone = [[changes[0], changes[2]], [changes[1]]]

    parts = provider.split_webhook_by_account(delivery)

    for part, company_changes in zip(parts, alone, strict=True):
        single = provider.parse_webhook(headers={}, body=signing.encode(signing.intuit_legacy_payload(company_changes)))
        assert (part.event_id, part.event_type, part.payload, part.occurred_at) == (
            single.event_id,
            single.event_type,
            single.payload,
            single.occurred_at,
        )


def test_a_one_company_delivery_splits_into_itself(provider):
    delivery = provider.parse_webhook(headers={}, body=CLOUDEVENTS_BODY)

    [part] = provider.split_webhook_by_account(delivery)

    assert (part.event_id, part.payload) == (delivery.event_id, delivery.payload)
    assert provider.webhook_account_id(part) == "310687"


def test_an_event_of_several_companies_has_no_single_account(provider):
    _, delivery = _mixed_delivery(provider)

    with pytest.raises(ValueError, match="exactly one company"):
        provider.webhook_account_id(delivery)


def test_a_split_part_is_handled_for_its_own_company_without_notes(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)
    created = qb_sandbox.create("Customer", {"DisplayName": "Rosalind Franklin"})
    events = [
        signing.intuit_cloudevent(realm_id="999", entity="Customer", entity_id="58", event_id="other"),
        signing.intuit_cloudevent(realm_id=qb_sandbox.realm_id, entity="Customer", entity_id=created["Id"]),
    ]
    delivery = provider.parse_webhook(headers={}, body=signing.encode(events))
    [own] = [p for p in provider.split_webhook_by_account(delivery) if provider.webhook_account_id(p) != "999"]

    outcome = handle(provider, own, connection)

    assert outcome.note == ""
    assert [r.external_id for r in outcome.records] == [created["Id"]]


def test_a_provider_with_app_level_webhooks_must_name_its_secrets_setting():
    from integrations.providers.base import validate_provider_class
    from integrations.providers.quickbooks.provider import QuickBooksProvider

    class WithoutSetting(QuickBooksProvider):
        app_webhook_secrets_setting = ""

    with pytest.raises(TypeError, match="app-level webhooks"):
        validate_provider_class(WithoutSetting)
