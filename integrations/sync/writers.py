"""Bulk writers: canonical records -> the orders domain plus the identity map, a batch at a time.

Every writer follows the same plan per batch (a provider page):

1. look up the identity map for the batch's external ids (one query);
2. classify each record: new, changed (content hash differs), unchanged (same hash), or stale (the source's
   updated time is older than what we stored: DESIGN.md rule 2, never written);
3. create new local rows with one batch INSERT (`integrations.sync.bulk`), linking instead to an existing row
   with the same natural key (customer email, product SKU, payment provider id) so a store's existing customers
   are not duplicated;
4. update changed rows with `bulk_update`;
5. write the identity rows (batch INSERT / `bulk_update`).

No per-row saves on this path: a 250-order page is about a dozen queries whatever its size. Validation that
needs no database happens before, per record, so a bad record fails alone (`BadRecordError`); a database error
inside a batch makes the caller retry that batch record by record to isolate the culprit.

The webhooks app writes through `records_write` too, so sync and webhooks share ordering and idempotency rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models.functions import Lower
from django.utils import timezone

from integrations.errors import BadRecordError
from integrations.models import IdentityMapping, Integration
from integrations.providers.base import Provider, RecordKind
from integrations.records import CustomerRecord, InventoryRecord, OrderRecord, PaymentRecord, ProductRecord
from integrations.sync import bulk
from jewelia.core.actors import Actor
from orders.currencies import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, is_valid_currency
from orders.models import (
    Channel,
    Customer,
    FulfillmentStatus,
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
    Payment,
    PaymentRecordStatus,
    PaymentStatus,
    Product,
    ProductCategory,
    StockReason,
)
from orders.services.numbers import order_numbers_allocate
from orders.services.stock import stock_levels_set_bulk

KIND_ORDER = (RecordKind.CUSTOMER, RecordKind.PRODUCT, RecordKind.INVENTORY, RecordKind.ORDER, RecordKind.PAYMENT)
RECORD_KIND = {
    CustomerRecord: RecordKind.CUSTOMER,
    ProductRecord: RecordKind.PRODUCT,
    InventoryRecord: RecordKind.INVENTORY,
    OrderRecord: RecordKind.ORDER,
    PaymentRecord: RecordKind.PAYMENT,
}
_MONEY_LIMIT = Decimal(10) ** (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES)
_CHANNELS = frozenset(Channel.values)
_CATEGORIES = frozenset(ProductCategory.values)


# --- context and results ----------------------------------------------------------------------------------------------
@dataclass
class WriteContext:
    """What every writer needs about the integration; built once per run."""

    integration: Integration
    provider: Provider
    actor: Actor
    namespaces: dict[RecordKind, str]
    batch_size: int = 1000
    _content_types: dict[type, int] = field(default_factory=dict)

    @classmethod
    def for_integration(cls, integration: Integration, provider: Provider, *, batch_size: int = 1000) -> WriteContext:
        namespaces = {}
        for kind in RecordKind:
            resource = next((r for r in provider.resources if r.kind == kind), None)
            namespaces[kind] = resource.name if resource else kind.value
        return cls(
            integration=integration,
            provider=provider,
            actor=Actor("integration", str(integration.pk), integration.name),
            namespaces=namespaces,
            batch_size=batch_size,
        )

    def content_type_id(self, model: type) -> int:
        if model not in self._content_types:
            self._content_types[model] = ContentType.objects.get_for_model(model).pk
        return self._content_types[model]

    @property
    def source_label(self) -> str:
        return f"{self.provider.name} sync"


@dataclass
class Entry:
    """One raw provider record and the canonical records its transform produced."""

    external_id: str
    raw: Any
    records: list


@dataclass
class WriteResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failures: dict[int, str] = field(default_factory=dict)  # entry index -> error
    high_watermark: datetime | None = None

    def add(self, other: WriteResult, *, offset: int = 0) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.failures.update({index + offset: error for index, error in other.failures.items()})
        self.high_watermark = _max_time(self.high_watermark, other.high_watermark)


@dataclass
class _KindResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    local_ids: dict[str, int] = field(default_factory=dict)  # external id -> local pk
    failed: dict[str, str] = field(default_factory=dict)  # external id -> error


def _max_time(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


# --- hashing and validation -------------------------------------------------------------------------------------------
_HASHED_FIELDS: dict[type, tuple[str, ...]] = {}


def _hashed_fields(cls: type) -> tuple[str, ...]:
    names = _HASHED_FIELDS.get(cls)
    if names is None:
        names = _HASHED_FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.name != "source_updated_at")
    return names


def _encode(value: Any) -> Any:
    """json.dumps' `default`: only the values JSON cannot encode natively come here (C encoder for the rest)."""
    if dataclasses.is_dataclass(value):
        return {name: getattr(value, name) for name in _hashed_fields(type(value))}
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # Decimal, and anything else with a stable text form


def content_hash(record: Any) -> str:
    """SHA-256 of the record's content (everything but `source_updated_at`, which says when, not what)."""
    payload = json.dumps(record, default=_encode, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _check_money(name: str, value: Decimal) -> None:
    if not isinstance(value, Decimal):
        raise BadRecordError(f"{name} is not a decimal amount")
    if value < 0:
        raise BadRecordError(f"{name} is negative ({value})")
    if value >= _MONEY_LIMIT:
        raise BadRecordError(f"{name} is too large ({value})")


def _check_currency(value: str) -> None:
    if not is_valid_currency(value or ""):
        raise BadRecordError(f"'{value}' is not an ISO 4217 currency")


_CHOICES: dict[type, frozenset[str]] = {}


def _check_choice(name: str, value: str, choices) -> None:
    allowed = _CHOICES.get(choices)
    if allowed is None:  # `TextChoices.values` builds a new list on every access: cache it
        allowed = _CHOICES[choices] = frozenset(choices.values)
    if value not in allowed:
        raise BadRecordError(f"{name} '{value}' is not one of {', '.join(choices.values)}")


def _check_external_id(value: str) -> None:
    if not value or len(str(value)) > 255:
        raise BadRecordError("external id is missing or longer than 255 characters")


def validate_record(record: Any) -> None:
    """Checks that need no database, so a bad record is refused before its batch is written."""
    _check_external_id(record.external_id)
    if isinstance(record, CustomerRecord):
        if len(record.email) > 254:
            raise BadRecordError("email is longer than 254 characters")
    elif isinstance(record, ProductRecord):
        if not record.sku or len(record.sku) > 64:
            raise BadRecordError("SKU is missing or longer than 64 characters")
        _check_money("price", record.price)
        _check_currency(record.currency)
    elif isinstance(record, InventoryRecord):
        if not record.sku:
            raise BadRecordError("inventory level has no SKU")
        if not isinstance(record.quantity, int):
            raise BadRecordError("quantity is not a whole number")
    elif isinstance(record, OrderRecord):
        _check_currency(record.currency)
        if record.placed_at is None:
            raise BadRecordError("order has no placed time")
        _check_choice("status", record.status, OrderStatus)
        _check_choice("payment status", record.payment_status, PaymentStatus)
        _check_choice("fulfillment status", record.fulfillment_status, FulfillmentStatus)
        for name in ("subtotal", "discount_total", "tax_total", "shipping_total", "total"):
            _check_money(name, getattr(record, name))
        for item in record.items:
            if not isinstance(item.quantity, int) or item.quantity < 1:
                raise BadRecordError(f"item {item.sku or item.name}: quantity must be at least 1")
            _check_money(f"item {item.sku or item.name} unit price", item.unit_price)
        if record.customer is not None:
            validate_record(record.customer)
        for payment in record.payments:
            validate_record(payment)
    elif isinstance(record, PaymentRecord):
        _check_currency(record.currency)
        _check_choice("payment status", record.status, PaymentRecordStatus)
        for name in ("amount", "captured_amount", "refunded_amount"):
            _check_money(name, getattr(record, name))
    else:
        raise BadRecordError(f"unsupported record type {type(record).__name__}")


# --- the identity plan ------------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    new: list[tuple[Any, str]] = field(default_factory=list)  # (record, hash)
    changed: list[tuple[Any, str, IdentityMapping]] = field(default_factory=list)
    unchanged: list[tuple[Any, IdentityMapping]] = field(default_factory=list)
    bump: list[IdentityMapping] = field(default_factory=list)  # newer time, same content


def _dedupe(records: Iterable[Any]) -> list[Any]:
    """One record per external id in a batch: the newest source version wins, else the last seen."""
    chosen: dict[str, Any] = {}
    for record in records:
        current = chosen.get(record.external_id)
        if (
            current is None
            or record.source_updated_at is None
            or current.source_updated_at is None
            or record.source_updated_at >= current.source_updated_at
        ):
            chosen[record.external_id] = record
    return list(chosen.values())


def _plan(ctx: WriteContext, kind: RecordKind, records: list[Any], *, hashed: bool = True) -> _Plan:
    existing = {
        mapping.external_id: mapping
        for mapping in IdentityMapping.objects.filter(
            integration=ctx.integration,
            resource=ctx.namespaces[kind],
            external_id__in=[record.external_id for record in records],
        ).only("id", "external_id", "object_id", "content_hash", "source_updated_at")
    }
    plan = _Plan()
    for record in records:
        mapping = existing.get(record.external_id)
        if not hashed:  # embedded copies: only resolved or created, never compared
            if mapping is None:
                plan.new.append((record, ""))
            else:
                plan.unchanged.append((record, mapping))
            continue
        digest = content_hash(record)
        if mapping is None:
            plan.new.append((record, digest))
            continue
        incoming, stored = record.source_updated_at, mapping.source_updated_at
        if incoming is not None and stored is not None and incoming < stored:
            plan.unchanged.append((record, mapping))  # an older version: never overwrites a newer one
        elif mapping.content_hash == digest:
            plan.unchanged.append((record, mapping))
            if incoming is not None and (stored is None or incoming > stored):
                mapping.source_updated_at = incoming
                plan.bump.append(mapping)
        else:
            plan.changed.append((record, digest, mapping))
    return plan


def _identities_write(
    ctx: WriteContext,
    kind: RecordKind,
    model: type,
    created: list[tuple[Any, str, int]],
    updated: list[tuple[Any, str, IdentityMapping, int]],
    bump: list[IdentityMapping],
) -> None:
    now = timezone.now()
    content_type_id = ctx.content_type_id(model)
    bulk.insert(
        IdentityMapping,
        [
            IdentityMapping(
                integration=ctx.integration,
                resource=ctx.namespaces[kind],
                external_id=record.external_id,
                content_type_id=content_type_id,
                object_id=local_id,
                content_hash=digest,
                source_updated_at=record.source_updated_at if digest else None,
                created_at=now,
                updated_at=now,
            )
            for record, digest, local_id in created
        ],
        batch_size=ctx.batch_size,
    )
    rows = []
    for record, digest, mapping, local_id in updated:
        mapping.content_hash = digest
        mapping.object_id = local_id
        mapping.source_updated_at = _max_time(mapping.source_updated_at, record.source_updated_at)
        mapping.updated_at = now
        rows.append(mapping)
    for mapping in bump:
        mapping.updated_at = now
        rows.append(mapping)
    if rows:
        IdentityMapping.objects.bulk_update(
            rows, ["content_hash", "object_id", "source_updated_at", "updated_at"], batch_size=ctx.batch_size
        )


def _upsert(
    ctx: WriteContext,
    kind: RecordKind,
    model: type,
    records: list[Any],
    *,
    build,
    apply,
    natural_key=None,
    existing_by_natural_key=None,
    update_fields: list[str],
    before_create=None,
    after_create=None,
    after_update=None,
    embedded: bool = False,
) -> _KindResult:
    """The shared plan -> create/link -> update -> identity sequence.

    `build(record)` returns a new unsaved model instance; `apply(instance, record)` copies a record onto an
    existing instance and returns True when anything changed. `natural_key(record)` and
    `existing_by_natural_key(keys)` (key -> pk) let new records link to local rows created elsewhere.
    `before_create(instances)` completes new instances in one go (order numbers); `after_create(pairs)` /
    `after_update(pairs)` receive [(record, instance)] for dependent rows (order items).

    `embedded` records are partial copies inside another record (an order's customer): they only resolve or
    create the local row, never update a known one, and their identity gets no hash or time, so the full
    record from its own resource always overwrites what the partial copy created.
    """
    result = _KindResult()
    plan = _plan(ctx, kind, _dedupe(records), hashed=not embedded)
    result.unchanged = len(plan.unchanged)
    for record, mapping in plan.unchanged:
        result.local_ids[record.external_id] = mapping.object_id

    # Records whose identity points at a row that no longer exists (deleted locally) are created again.
    wanted_ids = {mapping.object_id for _, _, mapping in plan.changed}
    instances = {obj.pk: obj for obj in model.objects.filter(pk__in=wanted_ids)} if wanted_ids else {}
    relink: list[tuple[Any, str, IdentityMapping]] = []
    updates: list[tuple[Any, str, IdentityMapping | None, Any]] = []
    for record, digest, mapping in plan.changed:
        if mapping.object_id in instances:
            updates.append((record, digest, mapping, instances[mapping.object_id]))
        else:
            relink.append((record, digest, mapping))

    to_create = [(record, digest, None) for record, digest in plan.new] + relink
    linked: list[tuple[Any, str, IdentityMapping | None, int]] = []
    if natural_key is not None and to_create:
        keys = {natural_key(record) for record, _, _ in to_create} - {None, ""}
        found = existing_by_natural_key(keys) if keys else {}
        remaining, claimed = [], {}
        for record, digest, mapping in to_create:
            key = natural_key(record)
            if key and key in found:
                linked.append((record, digest, mapping, found[key]))
            elif key and key in claimed:  # a second record with the same natural key in this batch
                linked.append((record, digest, mapping, claimed[key]))
            else:
                remaining.append((record, digest, mapping))
                if key:
                    claimed[key] = None
        to_create = remaining
    else:
        claimed = {}

    new_objects = [build(record) for record, _, _ in to_create]
    if before_create and new_objects:
        before_create(new_objects)
    bulk.insert(model, new_objects, batch_size=ctx.batch_size)
    for (record, _, _), obj in zip(to_create, new_objects, strict=True):
        key = natural_key(record) if natural_key is not None else None
        if key and key in claimed and claimed[key] is None:
            claimed[key] = obj.pk
    if after_create and new_objects:
        after_create([(record, obj) for (record, _, _), obj in zip(to_create, new_objects, strict=True)])

    # Linked rows (same natural key) are updated like changed ones.
    linked = [(r, d, m, pk if pk is not None else claimed[natural_key(r)]) for r, d, m, pk in linked]
    if linked:
        extra = {obj.pk: obj for obj in model.objects.filter(pk__in={pk for *_, pk in linked})}
        updates.extend((r, d, m, extra[pk]) for r, d, m, pk in linked if pk in extra)
    changed_objects, changed_pairs = [], []
    for record, _, _, instance in updates:
        if apply(instance, record):
            changed_objects.append(instance)
        changed_pairs.append((record, instance))
    if changed_objects:
        model.objects.bulk_update(changed_objects, update_fields, batch_size=ctx.batch_size)
    if after_update and changed_pairs:
        after_update(changed_pairs)

    created_identities = []
    updated_identities = []
    for (record, digest, mapping), obj in zip(to_create, new_objects, strict=True):
        result.local_ids[record.external_id] = obj.pk
        if mapping is None:
            created_identities.append((record, digest, obj.pk))
        else:
            updated_identities.append((record, digest, mapping, obj.pk))
        result.created += mapping is None
        result.updated += mapping is not None
    for record, digest, mapping, instance in updates:
        result.local_ids[record.external_id] = instance.pk
        if mapping is None:  # a new source record linked to an existing local row by its natural key
            created_identities.append((record, digest, instance.pk))
            result.updated += 1
        else:
            updated_identities.append((record, digest, mapping, instance.pk))
            result.updated += 1
    _identities_write(ctx, kind, model, created_identities, updated_identities, plan.bump)
    return result


# --- customers --------------------------------------------------------------------------------------------------------
def _customer_values(ctx: WriteContext, record: CustomerRecord) -> dict[str, Any]:
    values = {
        "name": (record.name or record.email or f"Customer {record.external_id}")[:200],
        "email": record.email.strip(),
        "phone": record.phone[:40],
        "addresses": record.addresses,
        "tags": record.tags,
        "notes": record.notes,
        "source_updated_at": record.source_updated_at,
    }
    return values


def _customer_build(ctx: WriteContext, now: datetime):
    def build(record: CustomerRecord) -> Customer:
        customer = Customer(**_customer_values(ctx, record), created_at=now, updated_at=now)
        if record.marketing_consent is not None:
            customer.marketing_consent = record.marketing_consent
            customer.marketing_consent_source = ctx.source_label
            customer.marketing_consent_at = record.source_updated_at or now
        return customer

    return build


def _customer_apply(ctx: WriteContext, now: datetime):
    def apply(customer: Customer, record: CustomerRecord) -> bool:
        values = _customer_values(ctx, record)
        if not values["email"]:
            values["email"] = customer.email  # a source without the email never blanks a known one
        if record.marketing_consent is not None and record.marketing_consent != customer.marketing_consent:
            values.update(
                marketing_consent=record.marketing_consent,
                marketing_consent_source=ctx.source_label,
                marketing_consent_at=record.source_updated_at or now,
            )
        changed = any(getattr(customer, name) != value for name, value in values.items())
        for name, value in values.items():
            setattr(customer, name, value)
        customer.updated_at = now
        return changed

    return apply


def write_customers(ctx: WriteContext, records: list[CustomerRecord], *, embedded: bool = False) -> _KindResult:
    now = timezone.now()

    def by_email(keys: set[str]) -> dict[str, int]:
        return dict(
            Customer.objects.annotate(email_ci=Lower("email")).filter(email_ci__in=keys).values_list("email_ci", "pk")
        )

    return _upsert(
        ctx,
        RecordKind.CUSTOMER,
        Customer,
        records,
        build=_customer_build(ctx, now),
        apply=_customer_apply(ctx, now),
        natural_key=lambda record: record.email.strip().lower() or None,
        existing_by_natural_key=by_email,
        update_fields=[
            "name",
            "email",
            "phone",
            "addresses",
            "tags",
            "notes",
            "marketing_consent",
            "marketing_consent_source",
            "marketing_consent_at",
            "source_updated_at",
            "updated_at",
        ],
        embedded=embedded,
    )


# --- products ---------------------------------------------------------------------------------------------------------
def _product_values(record: ProductRecord) -> dict[str, Any]:
    return {
        "sku": record.sku,
        "name": (record.name or record.sku)[:200],
        "price": record.price,
        "currency": record.currency,
        "category": record.category if record.category in _CATEGORIES else ProductCategory.OTHER,
        "metal": record.metal[:64],
        "gemstone": record.gemstone[:64],
        "active": record.active,
        "source_updated_at": record.source_updated_at,
    }


def write_products(ctx: WriteContext, records: list[ProductRecord]) -> _KindResult:
    now = timezone.now()

    def apply(product: Product, record: ProductRecord) -> bool:
        values = _product_values(record)
        changed = any(getattr(product, name) != value for name, value in values.items())
        for name, value in values.items():
            setattr(product, name, value)
        product.updated_at = now
        return changed

    return _upsert(
        ctx,
        RecordKind.PRODUCT,
        Product,
        records,
        build=lambda record: Product(**_product_values(record), created_at=now, updated_at=now),
        apply=apply,
        natural_key=lambda record: record.sku,
        existing_by_natural_key=lambda keys: dict(Product.objects.filter(sku__in=keys).values_list("sku", "pk")),
        update_fields=[*_product_values(ProductRecord("", None, "", "", Decimal(0), "USD")), "updated_at"],
    )


# --- inventory --------------------------------------------------------------------------------------------------------
def write_inventory(ctx: WriteContext, records: list[InventoryRecord]) -> _KindResult:
    """Stock levels by SKU, through `stock_levels_set_bulk` so every change is a StockMovement by this
    integration. A SKU we do not know fails alone (retry it after the product sync has brought the SKU in)."""
    records = _dedupe(records)
    products = dict(Product.objects.filter(sku__in={r.sku for r in records}).values_list("sku", "pk"))
    result = _KindResult()
    known = []
    for record in records:
        if record.sku in products:
            known.append(record)
        else:
            result.failed[record.external_id] = f"unknown SKU '{record.sku}': sync products first"
    plan = _plan(ctx, RecordKind.INVENTORY, known)
    levels: dict[int, int] = {}
    created, updated = [], []
    for record, digest in plan.new:
        levels[products[record.sku]] = max(record.quantity, 0)
        created.append((record, digest, products[record.sku]))
    for record, digest, mapping in plan.changed:
        levels[products[record.sku]] = max(record.quantity, 0)
        updated.append((record, digest, mapping, products[record.sku]))
    if levels:
        stock_levels_set_bulk(
            levels=levels,
            reason=StockReason.INVENTORY_SYNC,
            actor=ctx.actor,
            note=f"{ctx.source_label} ({ctx.integration.name})",
        )
    _identities_write(ctx, RecordKind.INVENTORY, Product, created, updated, plan.bump)
    result.created, result.updated, result.unchanged = len(created), len(updated), len(plan.unchanged)
    for record in known:
        result.local_ids[record.external_id] = products[record.sku]
    return result


# --- payments ---------------------------------------------------------------------------------------------------------
def _payment_values(record: PaymentRecord, order_id: int | None, customer_id: int | None) -> dict[str, Any]:
    return {
        "provider": record.provider[:50],
        "external_id": record.external_id[:200],
        "amount": record.amount,
        "currency": record.currency,
        "status": record.status,
        "method": record.method[:50],
        "captured_amount": record.captured_amount,
        "refunded_amount": record.refunded_amount,
        "source_updated_at": record.source_updated_at,
        "order_id": order_id,
        "customer_id": customer_id,
    }


def write_payments(
    ctx: WriteContext, records: list[PaymentRecord], *, order_ids: dict[str, int] | None = None
) -> _KindResult:
    """Payments, linked to their order (given by the order writer for embedded payments, else resolved from
    `order_reference` through the identity map or the CRM order number) and customer."""
    now = timezone.now()
    order_ids = dict(order_ids or {})
    unresolved = {r.order_reference for r in records if r.order_reference and r.external_id not in order_ids}
    by_reference: dict[str, int] = {}
    if unresolved:
        by_reference.update(
            IdentityMapping.objects.filter(
                integration=ctx.integration, resource=ctx.namespaces[RecordKind.ORDER], external_id__in=unresolved
            ).values_list("external_id", "object_id")
        )
        by_reference.update(Order.objects.filter(number__in=unresolved - set(by_reference)).values_list("number", "pk"))
    customer_refs = {r.customer_external_id for r in records if r.customer_external_id}
    customers = (
        dict(
            IdentityMapping.objects.filter(
                integration=ctx.integration,
                resource=ctx.namespaces[RecordKind.CUSTOMER],
                external_id__in=customer_refs,
            ).values_list("external_id", "object_id")
        )
        if customer_refs
        else {}
    )

    def values(record: PaymentRecord) -> dict[str, Any]:
        order_id = order_ids.get(record.external_id) or by_reference.get(record.order_reference)
        return _payment_values(record, order_id, customers.get(record.customer_external_id))

    def apply(payment: Payment, record: PaymentRecord) -> bool:
        new_values = values(record)
        if new_values["order_id"] is None:
            new_values["order_id"] = payment.order_id  # never unlink a matched payment
        changed = any(getattr(payment, name) != value for name, value in new_values.items())
        for name, value in new_values.items():
            setattr(payment, name, value)
        payment.updated_at = now
        return changed

    return _upsert(
        ctx,
        RecordKind.PAYMENT,
        Payment,
        records,
        build=lambda record: Payment(**values(record), created_at=now, updated_at=now),
        apply=apply,
        natural_key=lambda record: (record.provider[:50], record.external_id[:200]),
        existing_by_natural_key=lambda keys: {
            (provider, external_id): pk
            for provider, external_id, pk in Payment.objects.filter(
                provider__in={k[0] for k in keys}, external_id__in={k[1] for k in keys}
            ).values_list("provider", "external_id", "pk")
        },
        update_fields=[*_payment_values(records[0], None, None), "updated_at"] if records else [],
    )


# --- orders -----------------------------------------------------------------------------------------------------------
def _order_values(record: OrderRecord, customer_id: int | None) -> dict[str, Any]:
    return {
        "external_reference": record.external_number[:100],
        "customer_id": customer_id,
        "channel": record.channel if record.channel in _CHANNELS else Channel.OTHER,
        "status": record.status,
        "payment_status": record.payment_status,
        "fulfillment_status": record.fulfillment_status,
        "currency": record.currency,
        "subtotal": record.subtotal,
        "discount_total": record.discount_total,
        "tax_total": record.tax_total,
        "shipping_total": record.shipping_total,
        "total": record.total,
        "placed_at": record.placed_at,
        "notes": record.notes,
        "source_updated_at": record.source_updated_at,
    }


def write_orders(ctx: WriteContext, records: list[OrderRecord]) -> _KindResult:
    """Orders with their items, embedded customer and payments. New orders get a CRM number and a creation
    entry in the status history; a changed order has its items replaced and, when the source moved its status,
    a history entry saying the integration did it (the source system is authoritative for its own orders)."""
    now = timezone.now()
    records = _dedupe(records)
    customers = [r.customer for r in records if r.customer is not None]
    customer_ids = write_customers(ctx, customers, embedded=True).local_ids if customers else {}
    skus = {item.sku for r in records for item in r.items if item.sku}
    product_ids = dict(Product.objects.filter(sku__in=skus).values_list("sku", "pk")) if skus else {}
    history: list[OrderStatusHistory] = []
    note = f"{ctx.source_label} ({ctx.integration.name})"

    def customer_of(record: OrderRecord) -> int | None:
        return customer_ids.get(record.customer.external_id) if record.customer is not None else None

    def items_of(order: Order, record: OrderRecord) -> list[OrderItem]:
        return [
            OrderItem(
                order=order,
                product_id=product_ids.get(item.sku),
                position=position,
                sku=item.sku[:64],
                name=(item.name or item.sku)[:200],
                quantity=item.quantity,
                unit_price=item.unit_price,
                line_total=item.unit_price * item.quantity,
                attributes=item.attributes,
                external_id=item.external_id[:100],
            )
            for position, item in enumerate(record.items)
        ]

    def build(record: OrderRecord) -> Order:
        return Order(**_order_values(record, customer_of(record)), created_at=now, updated_at=now)

    def after_create(pairs: list[tuple[OrderRecord, Order]]) -> None:
        items = [item for record, order in pairs for item in items_of(order, record)]
        bulk.insert(OrderItem, items, batch_size=ctx.batch_size)
        history.extend(
            OrderStatusHistory(
                order=order, from_status="", to_status=order.status, note=note, created_at=now, **ctx.actor.as_fields()
            )
            for _, order in pairs
        )

    previous_status: dict[int, str] = {}

    def apply(order: Order, record: OrderRecord) -> bool:
        values = _order_values(record, customer_of(record))
        if values["customer_id"] is None:
            values["customer_id"] = order.customer_id
        previous_status[order.pk] = order.status
        for name, value in values.items():
            setattr(order, name, value)
        order.updated_at = now
        return True  # the content hash already said it changed

    def after_update(pairs: list[tuple[OrderRecord, Order]]) -> None:
        OrderItem.objects.filter(order__in=[order.pk for _, order in pairs]).delete()
        bulk.insert(
            OrderItem, [item for record, order in pairs for item in items_of(order, record)], batch_size=ctx.batch_size
        )
        history.extend(
            OrderStatusHistory(
                order=order,
                from_status=previous_status[order.pk],
                to_status=order.status,
                note=note,
                created_at=now,
                **ctx.actor.as_fields(),
            )
            for _, order in pairs
            if previous_status.get(order.pk, order.status) != order.status
        )

    result = _upsert(
        ctx,
        RecordKind.ORDER,
        Order,
        records,
        build=build,
        apply=apply,
        update_fields=[*_order_values(records[0], None), "updated_at"] if records else [],
        before_create=_assign_numbers,
        after_create=after_create,
        after_update=after_update,
    )
    bulk.insert(OrderStatusHistory, history, batch_size=ctx.batch_size)
    payments = [payment for r in records if r.external_id in result.local_ids for payment in r.payments]
    if payments:
        order_of_payment = {p.external_id: result.local_ids[r.external_id] for r in records for p in r.payments}
        write_payments(ctx, payments, order_ids=order_of_payment)
    return result


def _assign_numbers(orders: list[Order]) -> None:
    """CRM numbers for a batch of new orders, allocated in one call (a sequence on PostgreSQL)."""
    for order, number in zip(orders, order_numbers_allocate(count=len(orders)), strict=True):
        order.number = number


# --- entry points -----------------------------------------------------------------------------------------------------
WRITERS = {
    RecordKind.CUSTOMER: write_customers,
    RecordKind.PRODUCT: write_products,
    RecordKind.INVENTORY: write_inventory,
    RecordKind.ORDER: write_orders,
    RecordKind.PAYMENT: write_payments,
}


def records_write(ctx: WriteContext, entries: list[Entry], *, counted_kind: RecordKind | None = None) -> WriteResult:
    """Write the records of `entries` in dependency order (customers, products, inventory, orders, payments).

    Counts cover records of `counted_kind` (the resource's own kind: an order sync counts orders, not the
    customers embedded in them). Failures found by a writer (an unknown SKU) fail their entry alone. Must run
    inside a transaction; database errors propagate so the caller can isolate the bad entry.
    """
    result = WriteResult()
    by_kind: dict[RecordKind, list[Any]] = {kind: [] for kind in KIND_ORDER}
    owner: dict[tuple[RecordKind, str], int] = {}
    for index, entry in enumerate(entries):
        for record in entry.records:
            kind = RECORD_KIND[type(record)]
            by_kind[kind].append(record)
            owner[(kind, record.external_id)] = index
            result.high_watermark = _max_time(result.high_watermark, record.source_updated_at)
    for kind in KIND_ORDER:
        if not by_kind[kind]:
            continue
        outcome = WRITERS[kind](ctx, by_kind[kind])
        for external_id, error in outcome.failed.items():
            result.failures[owner[(kind, external_id)]] = error
        if counted_kind is None or kind == counted_kind:
            result.created += outcome.created
            result.updated += outcome.updated
            result.unchanged += outcome.unchanged
    return result
