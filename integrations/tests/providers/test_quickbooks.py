"""The QuickBooks provider against its sandbox: identity and OAuth spec, the shared contract, query paging and
incremental reads, transforms from the sheet's shapes, Faults -> error classes, and a sync through the engine
(`shared/providers/quickbooks.md`).

The other QuickBooks test modules import the `provider` fixture and `qb_connect` from here; the sandbox fixtures come
from `integrations.sandbox.testing` (this directory's conftest)."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from integrations.errors import AuthError, PermanentError, RateLimitedError, TransientError
from integrations.providers.base import AuthKind, Capability, Category
from integrations.providers.quickbooks import mappers
from integrations.providers.quickbooks.client import (
    MINOR_VERSION,
    ObjectNotFound,
    StaleObjectError,
    fault_error,
    fault_from_text,
    parse_fault,
)
from integrations.providers.quickbooks.provider import OAUTH
from integrations.providers.registry import get_provider
from integrations.records import CustomerRecord, PaymentRecord, ProductRecord
from integrations.sandbox.quickbooks import COMPANY_TZ
from integrations.sandbox.testing import sandbox_connection
from integrations.tests.providers.contract import ProviderContract, read_all
from jewelia.core.exceptions import ValidationFailed

FIXTURES = Path(__file__).parent / "fixtures" / "quickbooks"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


# --- shared fixtures (imported by the other test_quickbooks_* modules) ----------------------------------------------


@pytest.fixture
def provider():
    return get_provider("quickbooks")


def qb_connect(provider, sandbox, *, credentials=None, rate_limiting=False, **config):
    return sandbox_connection(
        provider,
        config=sandbox.config(**config),
        credentials=credentials if credentials is not None else sandbox.credentials(),
        rate_limiting=rate_limiting,
    )


@pytest.fixture
def qb_connection(provider, qb_sandbox):
    return qb_connect(provider, qb_sandbox, page_size=5)


def sent_queries(sandbox) -> list[str]:
    return [r.body.decode() for r in sandbox.requests_to(r"/query$")]


def ids(provider, pages, resource) -> list[str]:
    return [provider.external_id(resource, raw) for page in pages for raw in page.records]


# --- identity, OAuth spec, configuration -----------------------------------------------------------------------------


def test_quickbooks_is_an_accounting_provider_connected_with_oauth(provider):
    assert (provider.key, provider.name, provider.category, provider.auth_kind) == (
        "quickbooks",
        "QuickBooks Online",
        Category.ACCOUNTING,
        AuthKind.OAUTH2,
    )
    assert provider.has(Capability.PUSH_INVOICES) and provider.has(Capability.PUSH_SALES_RECEIPTS)
    assert provider.has(Capability.PULL_INVOICES) and provider.has(Capability.PULL_EXPENSES)


def test_the_oauth_spec_names_intuits_endpoints_scope_settings_and_token_lifetimes(provider):
    spec = provider.oauth
    assert (spec.authorize_url, spec.token_url, spec.revoke_url) == (
        "https://appcenter.intuit.com/connect/oauth2",
        "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
        "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
    )
    assert spec.scopes == ("com.intuit.quickbooks.accounting",)
    assert (spec.client_id_setting, spec.client_secret_setting) == ("QUICKBOOKS_CLIENT_ID", "QUICKBOOKS_CLIENT_SECRET")
    assert (spec.access_token_lifetime, spec.refresh_token_lifetime) == (timedelta(hours=1), timedelta(days=100))
    assert spec.rotates_refresh_token is True


def test_an_integration_without_an_oauth_base_url_uses_intuits_endpoints(provider):
    assert provider.oauth_spec({"environment": "sandbox"}) is OAUTH


def test_a_sandbox_oauth_base_url_moves_the_three_endpoints_under_it(provider, settings):
    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]

    spec = provider.oauth_spec({"oauth_base_url": "http://127.0.0.1:8765/quickbooks/"})

    assert (spec.authorize_url, spec.token_url, spec.revoke_url) == (
        "http://127.0.0.1:8765/quickbooks/connect/oauth2",
        "http://127.0.0.1:8765/quickbooks/oauth2/v1/tokens/bearer",
        "http://127.0.0.1:8765/quickbooks/v2/oauth2/tokens/revoke",
    )
    assert spec.scopes == OAUTH.scopes


def test_an_oauth_base_url_on_a_private_host_is_refused(provider, settings):
    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = []

    with pytest.raises(ValidationFailed):
        provider.oauth_spec({"oauth_base_url": "http://127.0.0.1:8765/quickbooks"})


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "https://quickbooks.api.intuit.com"),
        ({"environment": "production"}, "https://quickbooks.api.intuit.com"),
        ({"environment": "sandbox"}, "https://sandbox-quickbooks.api.intuit.com"),
        ({"environment": "sandbox", "base_url": "http://127.0.0.1:9/qb/"}, "http://127.0.0.1:9/qb"),
    ],
)
def test_the_api_host_follows_the_configured_environment(provider, config, expected):
    assert provider.base_url(config) == expected


def test_the_oauth_callback_realm_id_is_kept_in_config(provider):
    assert provider.oauth_callback_extras({"code": "c", "state": "s", "realmId": "310687"}) == {"realm_id": "310687"}


@pytest.mark.parametrize("params", [{"code": "c"}, {"realmId": ""}, {"realmId": "../other"}])
def test_an_oauth_callback_without_a_usable_realm_id_is_refused(provider, params):
    with pytest.raises(ValueError, match="realmId"):
        provider.oauth_callback_extras(params)


# --- the shared contract ---------------------------------------------------------------------------------------------


class TestQuickBooksContract(ProviderContract):
    @pytest.fixture
    def connection(self, provider, qb_sandbox):
        return qb_connect(provider, qb_sandbox, page_size=3)

    @pytest.fixture
    def rejected_connection(self, provider, qb_sandbox):
        credentials = {"access_token": "eyJrevoked-access", "refresh_token": "AB11revoked-refresh-token"}
        return qb_connect(provider, qb_sandbox, credentials=credentials)

    @pytest.fixture
    def bad_records(self):
        meta = {"LastUpdatedTime": "2024-03-04T14:28:52-08:00"}
        return {
            "customers": {"Id": "59", "DisplayName": "Grace", "MetaData": {"LastUpdatedTime": "yesterday"}},
            "items": {"Id": "13", "Name": "Ring", "Type": "NonInventory", "UnitPrice": "lots", "MetaData": meta},
            "invoices": {"Id": "146", "TotalAmt": 10, "MetaData": meta},  # no CustomerRef
            "payments": {"Id": "172", "TotalAmt": True, "MetaData": meta},
            "purchases": {"Id": "212", "TotalAmt": 1.005, "MetaData": meta},  # more decimals than USD has
        }

    def test_every_pulled_resource_kind_is_a_declared_capability(self, provider):
        """`invoices` carries kind ORDER for its push side (an order becomes an invoice); pulled invoices write
        nothing yet (no canonical invoice record), so its pull capability is PULL_INVOICES, not PULL_ORDERS.
        Every other pulled resource is checked as the contract does."""
        capability = {"invoices": Capability.PULL_INVOICES, "purchases": Capability.PULL_EXPENSES}
        from integrations.tests.providers.contract import PULL_CAPABILITY

        for resource in self.pulled(provider):
            assert provider.has(capability.get(resource.name) or PULL_CAPABILITY[resource.kind]), resource.name


# --- query paging and incremental reads ------------------------------------------------------------------------------


def test_pages_are_queries_ordered_by_update_time_with_the_pinned_minor_version(provider, qb_sandbox, qb_connection):
    provider.fetch_page(qb_connection, "customers", cursor={}, since=None)

    request = qb_sandbox.requests_to(r"/query$")[-1]
    assert request.method == "POST"
    assert request.header("content-type") == "application/text"
    assert request.header("authorization") == f"Bearer {qb_connection.credentials['access_token']}"
    assert parse_qs(request.raw_query) == {"minorversion": [str(MINOR_VERSION)]}
    assert request.path == f"/v3/company/{qb_sandbox.realm_id}/query"
    assert request.body.decode() == (
        "SELECT * FROM Customer ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 5"
    )


def test_an_integration_can_pin_a_later_minor_version(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox, minor_version=76)

    provider.check_connection(connection)

    assert qb_sandbox.requests[-1].query["minorversion"] == ["76"]


def test_a_full_read_pages_on_by_update_time_and_reads_every_customer_once(provider, qb_sandbox, qb_connection):
    pages = read_all(provider, qb_connection, "customers")

    assert sorted(ids(provider, pages, "customers"), key=int) == [c["Id"] for c in qb_sandbox.all("Customer")]
    assert [len(page.records) for page in pages] == [5, 5, 2]
    second = sent_queries(qb_sandbox)[1]
    last_of_first = pages[0].records[-1]["MetaData"]["LastUpdatedTime"]
    assert second == (
        f"SELECT * FROM Customer WHERE MetaData.LastUpdatedTime >= '{last_of_first}' "
        "ORDERBY MetaData.LastUpdatedTime STARTPOSITION 2 MAXRESULTS 5"
    )


def test_customers_sharing_an_update_time_across_a_page_boundary_are_each_read_once(provider, qb_sandbox):
    # Customers 3 and 4 of the sandbox share a LastUpdatedTime; with pages of 3 the boundary falls between them.
    connection = qb_connect(provider, qb_sandbox, page_size=3)
    customers = qb_sandbox.all("Customer")
    assert customers[2]["MetaData"]["LastUpdatedTime"] == customers[3]["MetaData"]["LastUpdatedTime"]

    pages = read_all(provider, connection, "customers")

    read = ids(provider, pages, "customers")
    assert sorted(read, key=int) == [c["Id"] for c in customers]
    assert pages[0].cursor == {"from": customers[2]["MetaData"]["LastUpdatedTime"], "skip": 1}


def test_a_page_whose_rows_all_share_the_cursor_time_moves_on_by_offset(provider, qb_sandbox):
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)  # after all generated data
    made = [qb_sandbox.create("Customer", {"DisplayName": f"Same second {n}"}, at=at)["Id"] for n in range(5)]
    connection = qb_connect(provider, qb_sandbox, page_size=2)

    pages, cursor = [], {}
    while True:
        page = provider.fetch_page(connection, "customers", cursor=cursor, since=at - timedelta(seconds=1))
        pages.append(page)
        cursor = page.cursor
        if page.done:
            break

    assert ids(provider, pages, "customers") == made
    sent = at.astimezone(COMPANY_TZ).isoformat()  # the time text as QuickBooks wrote it on the records
    assert [p.cursor for p in pages[:-1]] == [{"from": sent, "skip": 2}, {"from": sent, "skip": 4}]


def test_a_customer_edited_during_a_pass_is_read_again_and_none_is_skipped(provider, qb_sandbox, qb_connection):
    first = provider.fetch_page(qb_connection, "customers", cursor={}, since=None)
    qb_sandbox.edit("Customer", first.records[0]["Id"], Notes="moved to the end of the order")

    pages = [first]
    cursor = first.cursor
    while not pages[-1].done:
        pages.append(provider.fetch_page(qb_connection, "customers", cursor=cursor, since=None))
        cursor = pages[-1].cursor

    read = ids(provider, pages, "customers")
    assert set(read) == {c["Id"] for c in qb_sandbox.all("Customer")}
    assert read.count(first.records[0]["Id"]) == 2


def test_an_incremental_read_asks_for_changes_since_the_bound_and_gets_only_those(provider, qb_sandbox, qb_connection):
    edited = qb_sandbox.all("Customer")[4]
    at = datetime.now(UTC) + timedelta(minutes=1)
    qb_sandbox.edit("Customer", edited["Id"], at=at, Notes="VIP")

    page = provider.fetch_page(qb_connection, "customers", cursor={}, since=at - timedelta(seconds=5))

    assert [r["Id"] for r in page.records] == [edited["Id"]]
    assert page.done and page.high_watermark == at.replace(microsecond=0)
    since = (at - timedelta(seconds=5)).isoformat(timespec="seconds")
    assert sent_queries(qb_sandbox)[-1] == (
        f"SELECT * FROM Customer WHERE MetaData.LastUpdatedTime >= '{since}' "
        "ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 5"
    )


def test_the_filter_property_spelling_is_configurable(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox, updated_time_property="Metadata.LastUpdatedTime")

    # The sandbox knows only the entity's own spelling (`MetaData`): Intuit's case rules are unconfirmed.
    with pytest.raises(PermanentError, match="Error parsing query"):
        provider.fetch_page(connection, "customers", cursor={}, since=datetime(2026, 1, 1, tzinfo=UTC))


def test_a_page_of_payments_reads_its_linked_invoices_in_one_query(provider, qb_sandbox, qb_connection):
    page = provider.fetch_page(qb_connection, "payments", cursor={}, since=None)

    invoice_queries = [q for q in sent_queries(qb_sandbox) if q.startswith("SELECT * FROM Invoice")]
    linked = sorted({i for p in page.records for i in mappers.linked_invoice_ids(p)}, key=int)
    assert invoice_queries == [
        "SELECT * FROM Invoice WHERE Id IN (" + ", ".join(f"'{i}'" for i in linked) + f") MAXRESULTS {len(linked)}"
    ]
    for payment in page.records:
        assert set(payment[mappers.INVOICES_KEY]) == set(mappers.linked_invoice_ids(payment))


def test_payments_reference_the_crm_order_number_or_else_the_invoice_id(provider, qb_sandbox, qb_connection):
    records = [
        record
        for page in read_all(provider, qb_connection, "payments")
        for raw in page.records
        for record in provider.transform("payments", raw, qb_connection)
    ]

    invoices = {i["Id"]: i for i in qb_sandbox.all("Invoice")}
    for record in records:
        if ":" not in record.external_id:
            assert record.order_reference == ""  # the unapplied payment: a customer credit
            continue
        invoice = invoices[record.external_id.split(":")[1]]
        number = invoice["DocNumber"]
        assert record.order_reference == (number if number.startswith("J-") else invoice["Id"])
    assert {r.order_reference for r in records} >= {"J-000001", "J-000003"}


def test_fetch_record_reads_one_object_and_none_when_quickbooks_no_longer_has_it(provider, qb_sandbox, qb_connection):
    payment = qb_sandbox.all("Payment")[0]

    raw = provider.fetch_record(qb_connection, "payments", payment["Id"])
    qb_sandbox.delete("Payment", payment["Id"])

    assert raw["Id"] == payment["Id"] and mappers.INVOICES_KEY in raw
    assert provider.fetch_record(qb_connection, "payments", payment["Id"]) is None


def test_check_connection_without_a_company_is_an_auth_error(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)
    connection.config.pop("realm_id")

    with pytest.raises(AuthError, match="connect it first"):
        provider.check_connection(connection)


# --- transforms (the sheet's shapes) ---------------------------------------------------------------------------------


def test_a_customer_becomes_a_customer_record(provider, qb_connection):
    raw = fixture("query_customers.json")["QueryResponse"]["Customer"][0]

    assert provider.transform("customers", raw, qb_connection) == [
        CustomerRecord(
            external_id="58",
            source_updated_at=datetime(2024, 3, 4, 22, 28, 52, tzinfo=UTC),
            name="Ada Jeweler",
            email="ada@example.com",
        )
    ]


def test_a_customers_addresses_phone_and_notes_are_kept(provider, qb_connection):
    raw = {
        **fixture("query_customers.json")["QueryResponse"]["Customer"][0],
        "PrimaryPhone": {"FreeFormNumber": "(415) 555-0100"},
        "BillAddr": {"Line1": "1 Market St", "City": "San Francisco", "CountrySubDivisionCode": "CA"},
        "ShipAddr": {"Line1": "9 Pier", "PostalCode": "94105", "Country": "US"},
        "Notes": "Prefers rose gold",
    }

    [record] = provider.transform("customers", raw, qb_connection)

    assert (record.phone, record.notes) == ("(415) 555-0100", "Prefers rose gold")
    assert record.addresses == [
        {"kind": "billing", "line1": "1 Market St", "line2": "", "city": "San Francisco", "region": "CA",
         "postal_code": "", "country": ""},
        {"kind": "shipping", "line1": "9 Pier", "line2": "", "city": "", "region": "", "postal_code": "94105",
         "country": "US"},
    ]  # fmt: skip


def test_an_item_becomes_a_product_priced_in_the_home_currency(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox, home_currency="CAD")

    assert provider.transform("items", fixture("item.json"), connection) == [
        ProductRecord(
            external_id="12",
            source_updated_at=datetime(2024, 3, 1, 19, 5, 41, tzinfo=UTC),
            sku="RING-18K-SOL",
            name="18k Solitaire Ring",
            price=Decimal("1250.00"),
            currency="CAD",
            category="ring",
            active=True,
        )
    ]


@pytest.mark.parametrize("item_type", ["Category", "Group"])
def test_category_and_group_items_are_not_products(provider, qb_connection, item_type):
    assert provider.transform("items", {**fixture("item.json"), "Type": item_type}, qb_connection) == []


def test_an_item_without_a_sku_gets_one_from_its_id(provider, qb_connection):
    raw = {**fixture("item.json"), "Sku": "", "Type": "Service", "UnitPrice": 45}
    raw |= {"Name": "Ring resizing", "FullyQualifiedName": "Ring resizing", "SubItem": False, "ParentRef": None}

    [record] = provider.transform("items", raw, qb_connection)

    assert (record.sku, record.category, record.price) == ("qbo-item-12", "repair_service", Decimal("45.00"))


def test_a_payment_becomes_one_record_per_invoice_plus_its_unapplied_amount(provider, qb_connection):
    records = provider.transform("payments", fixture("payment.json"), qb_connection)

    common = {
        "source_updated_at": datetime(2024, 3, 6, 17, 15, 10, tzinfo=UTC),
        "provider": "quickbooks",
        "currency": "USD",
        "status": "captured",
        "method": "Visa",
        "customer_external_id": "58",
    }
    assert records == [
        PaymentRecord(external_id="171:145", amount=Decimal("1250.00"), captured_amount=Decimal("1250.00"),
                      order_reference="J-000123", **common),
        PaymentRecord(external_id="171:146", amount=Decimal("100.00"), captured_amount=Decimal("100.00"),
                      order_reference="146", **common),
        PaymentRecord(external_id="171", amount=Decimal("50.00"), captured_amount=Decimal("50.00"),
                      order_reference="", **common),
    ]  # fmt: skip


def test_a_payment_applied_to_nothing_is_one_record_of_its_total(provider, qb_connection):
    raw = {**fixture("payment.json"), "Line": [], "TotalAmt": 80}

    [record] = provider.transform("payments", raw, qb_connection)

    assert (record.external_id, record.amount, record.order_reference) == ("171", Decimal("80.00"), "")


def test_invoices_and_purchases_are_checked_but_write_nothing_yet(provider, qb_connection):
    assert provider.transform("invoices", fixture("invoice.json"), qb_connection) == []
    assert provider.transform("purchases", fixture("purchase.json"), qb_connection) == []


def test_a_bad_record_names_its_resource_id_and_reason(provider, qb_connection):
    from integrations.errors import BadRecordError

    raw = {**fixture("item.json"), "Type": "Bundle"}

    with pytest.raises(BadRecordError, match=r"^QuickBooks items 12: unknown item Type 'Bundle'$") as caught:
        provider.transform("items", raw, qb_connection)
    assert (caught.value.external_id, caught.value.payload) == ("12", raw)


# --- Faults -> error classes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "error", "codes"),
    [
        ("fault_stale_object.json", 400, StaleObjectError, ["5010"]),
        ("fault_validation.json", 400, PermanentError, ["6240"]),
        ("fault_authentication.json", 401, AuthError, ["3200"]),
        ("fault_throttle.json", 429, RateLimitedError, ["3001"]),
    ],
)
def test_each_fault_body_maps_to_its_error_class(name, status, error, codes):
    fault = parse_fault(fixture(name))

    raised = fault_error(fault, status=status, what="write Customer")

    assert type(raised) is error
    assert raised.details["codes"] == codes
    assert raised.message.startswith("QuickBooks write Customer: ")


def test_a_fault_cut_short_by_the_error_excerpt_is_still_read():
    text = json.dumps(fixture("fault_stale_object.json"))[:-20]  # cut inside the trailing "time"

    fault = fault_from_text(text)

    assert (fault.type, fault.codes) == ("ValidationFault", {"5010"})
    assert isinstance(fault_error(fault, status=400, what="x"), StaleObjectError)


def test_an_authorization_fault_is_an_auth_error_asking_for_an_admin(provider, qb_sandbox, qb_connection):
    qb_sandbox.forbid_next()

    with pytest.raises(AuthError, match="reconnect as an admin") as caught:
        provider.check_connection(qb_connection)
    assert caught.value.status == 403


def test_a_validation_fault_on_a_read_is_a_permanent_error_with_its_message(provider, qb_sandbox, qb_connection):
    qb_sandbox.fault_next(400, "ValidationFault", "4000", "Error parsing query", detail="QueryParserError: nope")

    with pytest.raises(PermanentError) as caught:
        provider.fetch_page(qb_connection, "customers", cursor={}, since=None)
    assert caught.value.message == "QuickBooks query: Error parsing query: QueryParserError: nope (code 4000)"
    assert caught.value.details == {"fault_type": "ValidationFault", "codes": ["4000"]}


def test_throttling_is_retried_then_rate_limited_with_the_fault_text(provider, qb_sandbox, qb_connection, fake_time):
    qb_sandbox.throttle_next(4)

    with pytest.raises(RateLimitedError, match="ThrottleExceeded") as caught:
        provider.fetch_page(qb_connection, "customers", cursor={}, since=None)
    assert caught.value.status == 429
    assert len(qb_sandbox.requests_to(r"/query$")) == 4


def test_a_throttling_fault_with_another_status_is_retried_too(provider, qb_sandbox, qb_connection, fake_time):
    qb_sandbox.fault_next(400, "ThrottlingFault", "3001", "message=ThrottleExceeded; errorCode=003001")

    page = provider.fetch_page(qb_connection, "customers", cursor={}, since=None)

    assert len(page.records) == 5
    assert [r.status for r in qb_sandbox.requests_to(r"/query$")] == [400, 200]


def test_a_server_fault_is_retried_and_then_transient(provider, qb_sandbox, qb_connection, fake_time):
    qb_sandbox.fail_next(4, status=503)

    with pytest.raises(TransientError) as caught:
        provider.fetch_page(qb_connection, "customers", cursor={}, since=None)
    assert type(caught.value) is TransientError and caught.value.status == 503


def test_a_missing_object_is_object_not_found_for_the_client(provider, qb_sandbox, qb_connection):
    client = provider.client(qb_connection)

    with pytest.raises(ObjectNotFound):
        client.api("GET", "customer/999999", what="read Customer 999999")
    assert client.read("Customer", "999999") is None


# --- through the sync engine -----------------------------------------------------------------------------------------


@pytest.fixture
def qb_integration(db, qb_sandbox, settings):
    from integrations.services import integration_create
    from jewelia.core.actors import Actor

    settings.INTEGRATIONS_RATE_LIMITING = False
    return integration_create(
        actor=Actor("user", "1", "staff"),
        name="QuickBooks Online",
        provider="quickbooks",
        config=qb_sandbox.config(page_size=4),
        credentials=qb_sandbox.credentials(),
        status="active",
    )


def test_a_full_sync_writes_customers_products_and_payments_linked_to_crm_orders(qb_integration, qb_sandbox, run_sync):
    from orders.models import Customer, Order, Payment, Product

    order = Order.objects.create(number="J-000001", currency="USD")

    run = run_sync(qb_integration)

    assert run.status == "succeeded"
    assert (Customer.objects.count(), Product.objects.count()) == (12, 10)
    payments = {p.external_id: p for p in Payment.objects.all()}
    sandbox_records = sum(len(mappers.payment_records(p, home_currency="USD")) for p in qb_sandbox.all("Payment"))
    assert len(payments) == sandbox_records
    first_invoice = qb_sandbox.all("Invoice")[0]
    linked = [p for p in payments.values() if p.order_id == order.pk]
    assert [(p.external_id.split(":")[1], p.amount, p.status) for p in linked] == [
        (first_invoice["Id"], Decimal(str(first_invoice["TotalAmt"])).quantize(Decimal("0.001")), "captured")
    ]


def test_a_second_sync_reads_only_what_changed(qb_integration, qb_sandbox, run_sync):
    run_sync(qb_integration)
    customer = qb_sandbox.all("Customer")[0]
    qb_sandbox.edit("Customer", customer["Id"], at=datetime.now(UTC) + timedelta(minutes=10), Notes="Anniversary")

    run = run_sync(qb_integration)

    assert run.status == "succeeded"
    from orders.models import Customer

    assert Customer.objects.get(email=customer["PrimaryEmailAddr"]["Address"]).notes == "Anniversary"
    assert run.updated == 1


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("Diamond Stud Earrings", "earrings"),
        ("Pearl Earring", "earrings"),
        ("Engagement Ring 1ct", "engagement_ring"),
        ("18k Solitaire Ring", "ring"),
        ("Earrings:Hoops", "earrings"),
        ("Gift card", "gift_card"),
        ("Polishing cloth", "other"),
    ],
)
def test_an_items_category_is_the_longest_category_word_in_its_name(name, category):
    """'Earrings' contains 'ring': the longest match decides, not the first in the table."""
    assert mappers.item_category({"Type": "Inventory", "Name": name, "FullyQualifiedName": name}) == category
