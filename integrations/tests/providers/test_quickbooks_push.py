"""Pushing CRM records to QuickBooks: creates and sparse updates with SyncToken, stale-object recovery, requestid
idempotency across lost answers and crashes, invoice and sales receipt bodies (`shared/providers/quickbooks.md`
§2, §4)."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs

import pytest

from integrations.errors import BadRecordError, PermanentError, TransientError
from integrations.providers.base import PushRequest
from integrations.providers.quickbooks.push import derived_request_id
from integrations.records import CustomerRecord, OrderItemRecord, OrderRecord, PaymentRecord, ProductRecord
from integrations.tests.providers import test_quickbooks as qb_fixtures
from integrations.tests.providers.test_quickbooks import qb_connect

# The provider fixture, shared with test_quickbooks.py (the sandbox fixtures come from conftest).
provider = qb_fixtures.provider

PLACED = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)


@pytest.fixture
def connection(provider, qb_sandbox):
    return qb_connect(provider, qb_sandbox, income_account_id="1")


def customer(**fields):
    values = {"external_id": "crm-7", "source_updated_at": None, "name": "Hedy Lamarr", "email": "hedy@example.com"}
    return CustomerRecord(**{**values, **fields})


def order(qb_sandbox, *, number="J-000777", items=None, customer_record=None, **fields):
    """An order as the outbox would snapshot it: two lines whose items are known QuickBooks items, and a customer
    already pushed (its QuickBooks id in `customer.external_id`)."""
    ring, resize = qb_sandbox.all("Item")[1], qb_sandbox.all("Item")[8]  # 18k Solitaire Ring, Ring resizing
    if items is None:
        items = [
            OrderItemRecord(sku=ring["Sku"], name=ring["Name"], quantity=2, unit_price=Decimal("398.00"),
                            external_id=ring["Id"]),
            OrderItemRecord(sku=resize["Sku"], name=resize["Name"], quantity=1, unit_price=Decimal("45.00"),
                            external_id=resize["Id"]),
        ]  # fmt: skip
    if customer_record is None:
        customer_record = customer(external_id=qb_sandbox.all("Customer")[0]["Id"])
    values = {
        "external_id": "1",
        "source_updated_at": None,
        "external_number": number,
        "currency": "USD",
        "placed_at": PLACED,
        "channel": "in_store",
        "status": "completed",
        "payment_status": "unpaid",
        "fulfillment_status": "fulfilled",
        "items": items,
        "subtotal": Decimal("841.00"),
        "discount_total": Decimal("0"),
        "tax_total": Decimal("0"),
        "shipping_total": Decimal("0"),
        "total": Decimal("841.00"),
        "customer": customer_record,
    }
    return OrderRecord(**{**values, **fields})


def push(provider, connection, resource, record, *, key="outbox-1", external_id="", **options):
    request = PushRequest(
        resource=resource, record=record, idempotency_key=key, external_id=external_id, options=options
    )
    return provider.push(connection, request)


def body_of(request):
    return json.loads(request.body)


# --- customers and items --------------------------------------------------------------------------------------------


def test_a_new_customer_is_created_with_the_push_key_as_requestid(provider, qb_sandbox, connection):
    result = push(provider, connection, "customers", customer(phone="+1 415 555 0100"))

    created = qb_sandbox.get("Customer", result.external_id)
    assert (created["DisplayName"], created["PrimaryEmailAddr"], result.version) == (
        "Hedy Lamarr",
        {"Address": "hedy@example.com"},
        "0",
    )
    [write] = qb_sandbox.writes("Customer")
    assert parse_qs(write.raw_query) == {"requestid": ["outbox-1"], "minorversion": ["75"]}
    assert body_of(write) == {
        "DisplayName": "Hedy Lamarr",
        "PrimaryEmailAddr": {"Address": "hedy@example.com"},
        "PrimaryPhone": {"FreeFormNumber": "+1 415 555 0100"},
    }


def test_pushing_a_pushed_customer_again_updates_the_same_object_sparsely(provider, qb_sandbox, connection):
    first = push(provider, connection, "customers", customer())
    count = len(qb_sandbox.all("Customer"))

    second = push(provider, connection, "customers", customer(email="hedy@lamarr.example"), key="outbox-2",
                  external_id=first.external_id)  # fmt: skip

    assert (second.external_id, second.version) == (first.external_id, "1")
    assert len(qb_sandbox.all("Customer")) == count
    assert qb_sandbox.get("Customer", first.external_id)["PrimaryEmailAddr"] == {"Address": "hedy@lamarr.example"}
    update = qb_sandbox.writes("Customer")[-1]
    assert body_of(update) == {
        "DisplayName": "Hedy Lamarr",
        "PrimaryEmailAddr": {"Address": "hedy@lamarr.example"},
        "Id": first.external_id,
        "SyncToken": "0",
        "sparse": True,
    }


def test_a_product_becomes_a_non_inventory_item_on_the_income_account(provider, qb_sandbox, connection):
    product = ProductRecord(
        external_id="p-1", source_updated_at=None, sku="BRCH-VIN-CAM", name="Vintage Cameo Brooch",
        price=Decimal("185.50"), currency="USD",
    )  # fmt: skip

    result = push(provider, connection, "items", product)

    item = qb_sandbox.get("Item", result.external_id)
    assert (item["Name"], item["Sku"], item["Type"], item["UnitPrice"], item["IncomeAccountRef"]["value"]) == (
        "Vintage Cameo Brooch",
        "BRCH-VIN-CAM",
        "NonInventory",
        Decimal("185.5"),
        "1",
    )


def test_an_item_push_without_an_income_account_fails_alone_with_the_reason(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)
    product = ProductRecord(
        external_id="p", source_updated_at=None, sku="X", name="X", price=Decimal(1), currency="USD"
    )

    with pytest.raises(BadRecordError, match="income_account_id"):
        push(provider, connection, "items", product)
    assert qb_sandbox.writes() == []


def test_a_name_taken_in_quickbooks_is_a_bad_record_with_a_hint(provider, qb_sandbox, connection):
    taken = qb_sandbox.all("Customer")[0]["DisplayName"]

    with pytest.raises(BadRecordError, match=r"Duplicate Name Exists Error.*\(code 6240\).*name is taken") as caught:
        push(provider, connection, "customers", customer(name=taken))
    assert caught.value.details["codes"] == ["6240"]


# --- idempotency ----------------------------------------------------------------------------------------------------


def test_a_lost_answer_is_retried_with_the_same_requestid_and_creates_one_customer(
    provider, qb_sandbox, connection, fake_time
):
    count = len(qb_sandbox.all("Customer"))
    qb_sandbox.lose_response_next()

    result = push(provider, connection, "customers", customer())

    writes = qb_sandbox.writes("Customer")
    assert [(w.status, w.query["requestid"]) for w in writes] == [(500, ["outbox-1"]), (200, ["outbox-1"])]
    assert len(qb_sandbox.all("Customer")) == count + 1
    assert qb_sandbox.get("Customer", result.external_id)["DisplayName"] == "Hedy Lamarr"


def test_a_crash_before_the_external_id_was_recorded_does_not_create_a_duplicate_on_retry(
    provider, qb_sandbox, connection, fake_time
):
    count = len(qb_sandbox.all("Customer"))
    qb_sandbox.lose_response_next(4)  # every attempt of the first push loses its answer
    with pytest.raises(TransientError):
        push(provider, connection, "customers", customer())

    retried = push(provider, connection, "customers", customer())  # the outbox retries the same entry

    assert len(qb_sandbox.all("Customer")) == count + 1
    assert qb_sandbox.get("Customer", retried.external_id)["DisplayName"] == "Hedy Lamarr"
    assert {w.query["requestid"][0] for w in qb_sandbox.writes("Customer")} == {"outbox-1"}


# --- invoices and sales receipts ------------------------------------------------------------------------------------


def test_an_order_becomes_an_invoice_with_its_number_date_customer_and_lines(provider, qb_sandbox, connection):
    record = order(qb_sandbox)

    result = push(provider, connection, "invoices", record)

    invoice = qb_sandbox.get("Invoice", result.external_id)
    assert (invoice["DocNumber"], invoice["TxnDate"], invoice["CustomerRef"]["value"]) == (
        "J-000777",
        "2026-03-04",
        record.customer.external_id,
    )
    assert (invoice["TotalAmt"], invoice["Balance"]) == (Decimal("841.00"), Decimal("841.00"))
    assert body_of(qb_sandbox.writes("Invoice")[0])["Line"] == [
        {"DetailType": "SalesItemLineDetail", "Amount": 796.0, "Description": "18k Solitaire Ring",
         "SalesItemLineDetail": {"ItemRef": {"value": record.items[0].external_id}, "Qty": 2, "UnitPrice": 398.0}},
        {"DetailType": "SalesItemLineDetail", "Amount": 45.0, "Description": "Ring resizing",
         "SalesItemLineDetail": {"ItemRef": {"value": record.items[1].external_id}, "Qty": 1, "UnitPrice": 45.0}},
    ]  # fmt: skip


def test_an_invoice_pushed_again_updates_it_and_bumps_its_sync_token(provider, qb_sandbox, connection):
    first = push(provider, connection, "invoices", order(qb_sandbox))
    count = len(qb_sandbox.all("Invoice"))

    second = push(provider, connection, "invoices", order(qb_sandbox, notes="Gift wrap"), key="outbox-2",
                  external_id=first.external_id)  # fmt: skip

    assert (second.external_id, first.version, second.version) == (first.external_id, "0", "1")
    assert len(qb_sandbox.all("Invoice")) == count
    assert qb_sandbox.get("Invoice", first.external_id)["PrivateNote"] == "Gift wrap"


def test_an_order_pushed_twice_without_its_external_id_still_makes_one_invoice(provider, qb_sandbox, connection):
    first = push(provider, connection, "invoices", order(qb_sandbox))
    count = len(qb_sandbox.all("Invoice"))

    again = push(provider, connection, "invoices", order(qb_sandbox), key="another-outbox-entry")

    assert again.external_id == first.external_id and again.version == "1"
    assert len(qb_sandbox.all("Invoice")) == count


def test_a_stale_sync_token_is_read_again_and_the_update_retried_once(provider, qb_sandbox, connection):
    first = push(provider, connection, "invoices", order(qb_sandbox))
    qb_sandbox.edit_before_next_update("Invoice", first.external_id)  # someone edits it in QuickBooks meanwhile

    result = push(provider, connection, "invoices", order(qb_sandbox, notes="Engraved"), key="outbox-2",
                  external_id=first.external_id)  # fmt: skip

    assert (result.external_id, result.version) == (first.external_id, "2")
    updates = qb_sandbox.writes("Invoice")[1:]
    assert [(u.status, u.query["requestid"][0], body_of(u)["SyncToken"]) for u in updates] == [
        (400, "outbox-2", "0"),
        (200, derived_request_id("outbox-2", "stale-retry"), "1"),
    ]
    assert qb_sandbox.get("Invoice", first.external_id)["PrivateNote"] == "Engraved"


def test_an_object_that_stays_stale_is_a_transient_error(provider, qb_sandbox, connection):
    first = push(provider, connection, "invoices", order(qb_sandbox))
    qb_sandbox.edit_before_next_update("Invoice", first.external_id)
    qb_sandbox.edit_before_next_update("Invoice", first.external_id)

    # The first update meets one edit; after the re-read, the retry meets the second.
    with pytest.raises(TransientError, match="kept changing"):
        push(provider, connection, "invoices", order(qb_sandbox), key="outbox-2", external_id=first.external_id)


def test_an_update_of_an_object_deleted_in_quickbooks_fails_permanently(provider, qb_sandbox, connection):
    first = push(provider, connection, "invoices", order(qb_sandbox))
    qb_sandbox.delete("Invoice", first.external_id)

    with pytest.raises(PermanentError, match="no longer exists"):
        push(provider, connection, "invoices", order(qb_sandbox), key="outbox-2", external_id=first.external_id)


def test_lines_without_an_item_id_find_the_item_by_name(provider, qb_sandbox, connection):
    watch = qb_sandbox.all("Item")[7]  # Classic Gold Watch
    line = OrderItemRecord(sku="WTCH-CLS-GLD", name="Classic Gold Watch", quantity=1, unit_price=Decimal("3400.00"))

    result = push(provider, connection, "invoices", order(qb_sandbox, items=[line]))

    invoice = qb_sandbox.get("Invoice", result.external_id)
    assert invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == watch["Id"]


def test_a_line_with_no_item_uses_the_default_item_or_fails_with_the_reason(provider, qb_sandbox, connection):
    line = OrderItemRecord(sku="CUSTOM-1", name="Custom signet ring", quantity=1, unit_price=Decimal("900.00"))
    default = qb_sandbox.all("Item")[3]["Id"]

    with pytest.raises(BadRecordError, match=r"no QuickBooks item named 'Custom signet ring'.*default_item_id"):
        push(provider, connection, "invoices", order(qb_sandbox, items=[line]))
    result = push(provider, connection, "invoices", order(qb_sandbox, items=[line]), default_item_id=default)

    assert qb_sandbox.get("Invoice", result.external_id)["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == (
        default
    )


def test_an_order_customer_without_a_quickbooks_id_is_found_by_display_name(provider, qb_sandbox, connection):
    known = qb_sandbox.all("Customer")[2]
    record = order(qb_sandbox, customer_record=customer(external_id="", name=known["DisplayName"]))

    result = push(provider, connection, "invoices", record)

    assert qb_sandbox.get("Invoice", result.external_id)["CustomerRef"]["value"] == known["Id"]
    assert qb_sandbox.writes("Customer") == []


def test_an_order_customer_unknown_to_quickbooks_is_created_once(provider, qb_sandbox, connection, fake_time):
    record = order(qb_sandbox, customer_record=customer(external_id="", name="Rosalind Franklin"))
    qb_sandbox.lose_response_next()  # the customer's creation loses its answer: the retry replays it

    result = push(provider, connection, "invoices", record)

    invoice = qb_sandbox.get("Invoice", result.external_id)
    created = qb_sandbox.get("Customer", invoice["CustomerRef"]["value"])
    assert created["DisplayName"] == "Rosalind Franklin"
    assert {w.query["requestid"][0] for w in qb_sandbox.writes("Customer")} == {
        derived_request_id("outbox-1", "customer")
    }
    assert [c["DisplayName"] for c in qb_sandbox.all("Customer")].count("Rosalind Franklin") == 1


def test_an_invoice_needs_a_customer_but_a_sales_receipt_does_not(provider, qb_sandbox, connection):
    record = order(qb_sandbox, customer_record=None)
    record.customer = None

    with pytest.raises(BadRecordError, match="an invoice needs a customer"):
        push(provider, connection, "invoices", record)
    result = push(provider, connection, "sales_receipts", record)

    receipt = qb_sandbox.get("SalesReceipt", result.external_id)
    assert ("CustomerRef" in receipt, receipt["TotalAmt"], receipt["Balance"]) == (False, Decimal("841.00"), 0)


def test_shipping_and_discount_become_their_own_lines(provider, qb_sandbox, connection):
    shipping = qb_sandbox.all("Item")[10]["Id"]  # the "Shipping" service item
    record = order(qb_sandbox, shipping_total=Decimal("25.00"), discount_total=Decimal("41.00"))

    result = push(provider, connection, "invoices", record, shipping_item_id=shipping)

    lines = body_of(qb_sandbox.writes("Invoice")[0])["Line"][2:]
    assert lines == [
        {"DetailType": "SalesItemLineDetail", "Amount": 25.0, "Description": "Shipping",
         "SalesItemLineDetail": {"ItemRef": {"value": shipping}, "Qty": 1, "UnitPrice": 25.0}},
        {"DetailType": "DiscountLineDetail", "Amount": 41.0, "DiscountLineDetail": {"PercentBased": False}},
    ]  # fmt: skip
    assert qb_sandbox.get("Invoice", result.external_id)["TotalAmt"] == Decimal("825.00")


def test_shipping_without_a_shipping_item_fails_with_the_setting_to_set(provider, qb_sandbox, connection):
    with pytest.raises(BadRecordError, match="shipping_item_id"):
        push(provider, connection, "invoices", order(qb_sandbox, shipping_total=Decimal("10.00")))


def test_an_order_number_too_long_for_a_doc_number_is_refused(provider, qb_sandbox, connection):
    with pytest.raises(BadRecordError, match="21-character DocNumber"):
        push(provider, connection, "invoices", order(qb_sandbox, number="J-" + "9" * 20))


def test_a_record_of_the_wrong_kind_or_an_unknown_resource_is_refused(provider, qb_sandbox, connection):
    payment = PaymentRecord(external_id="x", source_updated_at=None, provider="crm", amount=Decimal(1),
                            currency="USD", status="captured")  # fmt: skip

    with pytest.raises(BadRecordError, match="takes a OrderRecord, not PaymentRecord"):
        push(provider, connection, "invoices", payment)
    with pytest.raises(PermanentError, match="cannot push 'payments'"):
        push(provider, connection, "payments", payment)
