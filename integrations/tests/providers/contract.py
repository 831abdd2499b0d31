"""The contract every provider's tests run (STYLE.md: a shared contract test mixin per provider).

Subclass `ProviderContract` in `test_<provider>.py` as `class Test<Provider>Contract(ProviderContract)` and
define these fixtures in the subclass:

- `provider`: the registered provider instance (`get_provider("<key>")`);
- `connection`: a working `Connection` against the provider's sandbox whose config makes every resource span
  at least two pages (a small page size), with client-side rate limiting off;
- `rejected_connection`: the same sandbox with credentials it refuses and that cannot be refreshed;
- `bad_records`: `{resource: raw record the transform must reject}` for every pulled resource.

What it proves: the class is registrable and self-consistent, schemas are valid JSON Schema, every pulled
resource reads to its last page and transforms into canonical records (aware times, `Decimal` money,
non-empty external ids), cursors survive a JSON round trip and resume at the next page, bad records fail
alone as `BadRecordError`, auth failures are `AuthError`, and no credential reaches a log line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime
from decimal import Decimal

import pytest
from jsonschema import Draft202012Validator

from integrations.errors import AuthError, BadRecordError
from integrations.providers.base import Capability, Direction, RecordKind, ordered_resources, validate_provider_class
from integrations.providers.registry import get_provider
from integrations.records import (
    CustomerRecord,
    InventoryRecord,
    OrderItemRecord,
    OrderRecord,
    PaymentRecord,
    ProductRecord,
)

MAX_PAGES = 500
RECORD_TYPES = {
    RecordKind.CUSTOMER: CustomerRecord,
    RecordKind.PRODUCT: ProductRecord,
    RecordKind.INVENTORY: InventoryRecord,
    RecordKind.ORDER: OrderRecord,
    RecordKind.PAYMENT: PaymentRecord,
}
PULL_CAPABILITY = {
    RecordKind.CUSTOMER: Capability.PULL_CUSTOMERS,
    RecordKind.PRODUCT: Capability.PULL_PRODUCTS,
    RecordKind.INVENTORY: Capability.PULL_INVENTORY,
    RecordKind.ORDER: Capability.PULL_ORDERS,
    RecordKind.PAYMENT: Capability.PULL_PAYMENTS,
}


def read_all(provider, connection, resource: str) -> list:
    """Every page of a resource from an empty cursor; asserts cursors are JSON and the loop ends."""
    pages = []
    cursor: dict = {}
    for _ in range(MAX_PAGES):
        page = provider.fetch_page(connection, resource, cursor=cursor, since=None)
        pages.append(page)
        cursor = json.loads(json.dumps(page.cursor))
        if page.done:
            return pages
    raise AssertionError(f"{resource}: no last page after {MAX_PAGES} pages")


def assert_canonical(record) -> None:
    """Times aware, money Decimal (never float), ids present: what the engine relies on without looking."""
    name = type(record).__name__
    if not isinstance(record, OrderItemRecord):
        assert record.external_id, f"{name} without external_id"
    for item in dataclasses.fields(record):
        value = getattr(record, item.name)
        assert not isinstance(value, float), f"{name}.{item.name} is a float"
        if isinstance(value, datetime):
            assert value.tzinfo is not None, f"{name}.{item.name} is naive"
        for nested in value if isinstance(value, list) else [value]:
            if dataclasses.is_dataclass(nested):
                assert_canonical(nested)
    for money in ("price", "unit_price", "amount", "subtotal", "total"):
        if hasattr(record, money):
            assert isinstance(getattr(record, money), Decimal), f"{name}.{money} is not a Decimal"


class ProviderContract:
    def pulled(self, provider):
        return [r for r in provider.resources if r.direction in (Direction.PULL, Direction.BOTH)]

    def test_provider_is_registered_under_its_key(self, provider):
        assert get_provider(provider.key) is provider

    def test_provider_class_passes_registry_validation(self, provider):
        validate_provider_class(type(provider))

    def test_config_schema_is_valid_json_schema(self, provider):
        Draft202012Validator.check_schema(provider.config_schema)

    def test_credentials_schema_is_valid_json_schema(self, provider):
        Draft202012Validator.check_schema(provider.credentials_schema)

    def test_connection_config_and_credentials_satisfy_the_schemas(self, provider, connection):
        assert not list(Draft202012Validator(provider.config_schema).iter_errors(connection.config))
        assert not list(Draft202012Validator(provider.credentials_schema).iter_errors(connection.credentials))

    def test_every_pulled_resource_kind_is_a_declared_capability(self, provider):
        for resource in self.pulled(provider):
            assert provider.has(PULL_CAPABILITY[resource.kind]), resource.name

    def test_dependency_order_lists_every_resource_after_its_dependencies(self, provider):
        order = [r.name for r in ordered_resources(type(provider))]
        assert sorted(order) == sorted(r.name for r in provider.resources)
        for resource in provider.resources:
            for dependency in resource.depends_on:
                assert order.index(dependency) < order.index(resource.name)

    def test_client_has_timeouts(self, provider, connection):
        client = provider.client(connection)
        assert client.policy.connect_timeout > 0
        assert client.policy.read_timeout > 0

    def test_check_connection_succeeds_with_valid_credentials(self, provider, connection):
        provider.check_connection(connection)

    def test_check_connection_raises_auth_error_for_rejected_credentials(self, provider, rejected_connection):
        with pytest.raises(AuthError):
            provider.check_connection(rejected_connection)

    def test_every_resource_reads_to_its_last_page_as_canonical_records(self, provider, connection):
        for resource in self.pulled(provider):
            pages = read_all(provider, connection, resource.name)
            assert len(pages) >= 2, f"{resource.name}: the sandbox config should span several pages"
            raws = [raw for page in pages for raw in page.records]
            assert raws, resource.name
            for raw in raws:
                assert provider.external_id(resource.name, raw)
                for record in provider.transform(resource.name, raw, connection):
                    assert isinstance(record, RECORD_TYPES[resource.kind])
                    assert_canonical(record)

    def test_a_saved_cursor_resumes_at_the_next_page(self, provider, connection):
        for resource in self.pulled(provider):
            first = provider.fetch_page(connection, resource.name, cursor={}, since=None)
            saved = json.loads(json.dumps(first.cursor))
            resumed = provider.fetch_page(connection, resource.name, cursor=saved, since=None)
            again = provider.fetch_page(connection, resource.name, cursor=saved, since=None)
            first_ids = {provider.external_id(resource.name, r) for r in first.records}
            resumed_ids = [provider.external_id(resource.name, r) for r in resumed.records]
            assert resumed_ids == [provider.external_id(resource.name, r) for r in again.records]
            assert resumed_ids and not first_ids & set(resumed_ids), resource.name

    def test_transform_is_deterministic(self, provider, connection):
        for resource in self.pulled(provider):
            raw = provider.fetch_page(connection, resource.name, cursor={}, since=None).records[0]
            again = json.loads(json.dumps(raw))
            assert provider.transform(resource.name, raw, connection) == provider.transform(
                resource.name, again, connection
            )

    def test_a_bad_record_fails_alone_as_bad_record_error(self, provider, connection, bad_records):
        assert set(bad_records) == {r.name for r in self.pulled(provider)}
        for resource, raw in bad_records.items():
            with pytest.raises(BadRecordError) as caught:
                provider.transform(resource, raw, connection)
            assert caught.value.external_id == provider.external_id(resource, raw)

    def test_credentials_never_reach_the_logs(self, provider, connection, caplog):
        caplog.set_level(logging.DEBUG)
        provider.check_connection(connection)
        for resource in self.pulled(provider):
            provider.fetch_page(connection, resource.name, cursor={}, since=None)
        secrets = [v for v in connection.credentials.values() if isinstance(v, str) and len(v) >= 6]
        assert secrets
        for secret in secrets:
            assert secret not in caplog.text
