"""Pushing CRM records to QuickBooks (`QuickBooksProvider.push`). Facts: `shared/providers/quickbooks.md` §2, §4.

- Resources: `customers` (CustomerRecord -> Customer), `items` (ProductRecord -> Item), `invoices` and
  `sales_receipts` (OrderRecord -> Invoice / SalesReceipt). Push options (`PushRequest.options`) override the
  integration's config keys of the same name: item_type, income_account_id, default_item_id, shipping_item_id,
  default_customer_id, home_currency.
- References inside an order: `record.customer.external_id` and each `OrderItemRecord.external_id`, when set,
  are *QuickBooks* ids (the outbox fills them from this integration's identity map; never a CRM id). Without
  one, the customer is found by DisplayName (and created if missing, under a requestid derived from the push's
  key), and an item by its Name (else `default_item_id`, else the push fails with a `BadRecordError` saying so).
  A sales receipt may have no customer; an invoice must have one.
- Idempotency: every write carries `requestid=<PushRequest.idempotency_key>`; QuickBooks answers a repeated
  requestid with the first answer instead of writing again (how long it remembers is unconfirmed, sheet §2), so
  a retry after a lost answer, or after a crash before the external id was recorded, finds the first object.
  An order pushed without an external id is also looked up by `DocNumber` (the CRM order number) first and
  updated if found: the same order never becomes two invoices, whatever that window is.
- Updates (`external_id` set, or found by DocNumber): read the object for its current `SyncToken` and send a
  sparse update of the fields we own. On a stale-object fault (5010: someone changed it in between) read it
  again and retry once, under a derived requestid (QuickBooks would replay the fault for the first one); a
  second stale fault is a `TransientError`.
- A ValidationFault (bad data, duplicate name, unknown reference) is a `BadRecordError`: retrying the same
  snapshot cannot succeed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from integrations.errors import AuthError, BadRecordError, PermanentError, TransientError
from integrations.providers.base import PushRequest, PushResult
from integrations.records import CustomerRecord, OrderItemRecord, OrderRecord, ProductRecord

from . import mappers
from .client import DUPLICATE_NAME_CODE, ObjectNotFound, QuickBooksClient, StaleObjectError

PUSHED = {
    "customers": ("Customer", CustomerRecord),
    "items": ("Item", ProductRecord),
    "invoices": ("Invoice", OrderRecord),
    "sales_receipts": ("SalesReceipt", OrderRecord),
}
REQUEST_ID_NAMESPACE = uuid.UUID("0c5f8a8e-6b53-4b8e-9a53-7c1f1b0b9a51")


def derived_request_id(idempotency_key: str, purpose: str) -> str:
    """A `requestid` for a second write made on behalf of one push (a retry after a stale-object fault, a
    customer created for an invoice): stable across retries of the same outbox entry, different from the
    push's own key (QuickBooks would otherwise replay the first write's answer)."""
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{idempotency_key}:{purpose}"))


def push(client: QuickBooksClient, config: Mapping[str, Any], request: PushRequest) -> PushResult:
    """Create or update one object (see the module docstring). Returns its Id and SyncToken after the write."""
    if request.resource not in PUSHED:
        raise PermanentError(f"QuickBooks cannot push {request.resource!r}")
    entity, record_type = PUSHED[request.resource]
    if not isinstance(request.record, record_type):
        raise BadRecordError(
            f"QuickBooks {request.resource} takes a {record_type.__name__}, not {type(request.record).__name__}",
            external_id=request.external_id,
        )
    options = {**config, **request.options}
    try:
        body = _body(client, entity, request, options)
        current = None
        external_id = request.external_id
        if not external_id and entity in ("Invoice", "SalesReceipt") and body.get("DocNumber"):
            current = client.find(entity, "DocNumber", body["DocNumber"])
            external_id = mappers.object_id(current)
        obj = _write(client, entity, body, external_id, request.idempotency_key, current=current)
    except StaleObjectError as exc:
        raise TransientError(
            f"QuickBooks {entity} {request.external_id} kept changing while we updated it; retry later",
            status=exc.status,
        ) from None
    except (ObjectNotFound, AuthError, BadRecordError):
        raise
    except PermanentError as exc:
        if exc.details.get("fault_type") != "ValidationFault":
            raise
        hint = ""
        if DUPLICATE_NAME_CODE in exc.details.get("codes", []):
            hint = " (the name is taken in QuickBooks: rename one, or link the existing object)"
        raise BadRecordError(exc.message + hint, external_id=request.external_id, details=exc.details) from None
    return PushResult(external_id=mappers.object_id(obj), version=str(obj.get("SyncToken", "")))


def _body(client: QuickBooksClient, entity: str, request: PushRequest, options: Mapping[str, Any]) -> dict[str, Any]:
    record = request.record
    if isinstance(record, CustomerRecord):
        return mappers.customer_body(record)
    if isinstance(record, ProductRecord):
        return mappers.item_body(
            record,
            item_type=str(options.get("item_type") or "NonInventory"),
            income_account_id=str(options.get("income_account_id") or ""),
        )
    assert isinstance(record, OrderRecord)
    names: dict[str, str] = {}
    return mappers.sales_document_body(
        record,
        customer_ref=_customer_ref(client, entity, record, request.idempotency_key, options),
        item_refs=[_item_ref(client, item, options, names) for item in record.items],
        shipping_item_ref=str(options.get("shipping_item_id") or options.get("default_item_id") or ""),
        home_currency=str(options.get("home_currency") or mappers.DEFAULT_CURRENCY),
    )


def _customer_ref(
    client: QuickBooksClient, entity: str, record: OrderRecord, key: str, options: Mapping[str, Any]
) -> str:
    customer = record.customer
    if customer is not None and customer.external_id:
        return customer.external_id
    if customer is not None and (customer.name or customer.email):
        body = mappers.customer_body(customer)
        found = client.find("Customer", "DisplayName", body["DisplayName"])
        if found is not None:
            return mappers.object_id(found)
        created = client.write("Customer", body, request_id=derived_request_id(key, "customer"))
        return mappers.object_id(created)
    if options.get("default_customer_id"):
        return str(options["default_customer_id"])
    if entity == "SalesReceipt":
        return ""
    raise BadRecordError("an invoice needs a customer: the order has none and no default_customer_id is set")


def _item_ref(
    client: QuickBooksClient, item: OrderItemRecord, options: Mapping[str, Any], names: dict[str, str]
) -> str:
    """The line's QuickBooks item: its external id, else the item of that Name (looked up once per name and
    push), else `default_item_id`."""
    if item.external_id:
        return item.external_id
    name = (item.name or item.sku).strip()[: mappers.MAX_ITEM_NAME]
    if name and name not in names:
        found = client.find("Item", "Name", name)
        names[name] = mappers.object_id(found) if found else ""
    if names.get(name):
        return names[name]
    if options.get("default_item_id"):
        return str(options["default_item_id"])
    raise BadRecordError(
        f"no QuickBooks item named {name!r} (SKU {item.sku!r}): push the product first or set default_item_id"
    )


def _write(
    client: QuickBooksClient,
    entity: str,
    body: dict[str, Any],
    external_id: str,
    key: str,
    *,
    current: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if not external_id:
        return client.write(entity, body, request_id=key)
    current = current or client.read(entity, external_id)
    if current is None:
        raise PermanentError(
            f"QuickBooks {entity} {external_id} no longer exists (deleted in QuickBooks?): "
            "unlink it to push the object again"
        )
    try:
        return client.write(entity, _sparse(body, current), request_id=key)
    except StaleObjectError:
        current = client.read(entity, external_id)
        if current is None:
            raise PermanentError(f"QuickBooks {entity} {external_id} was deleted while we updated it") from None
        return client.write(entity, _sparse(body, current), request_id=derived_request_id(key, "stale-retry"))


def _sparse(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A sparse update: only the fields we own, on the object's current Id and SyncToken."""
    return {**body, "Id": current["Id"], "SyncToken": str(current.get("SyncToken", "0")), "sparse": True}
