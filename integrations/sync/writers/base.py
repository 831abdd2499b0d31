"""The shared machinery of the writers: context, results, content hash, validation, the identity plan and
the plan -> create/link -> update -> identity sequence every record kind goes through."""

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
    FulfillmentStatus,
    OrderStatus,
    PaymentRecordStatus,
    PaymentStatus,
    ProductCategory,
)

WRITE_ORDER = (RecordKind.CUSTOMER, RecordKind.PRODUCT, RecordKind.INVENTORY, RecordKind.ORDER, RecordKind.PAYMENT)
RECORD_KIND = {
    CustomerRecord: RecordKind.CUSTOMER,
    ProductRecord: RecordKind.PRODUCT,
    InventoryRecord: RecordKind.INVENTORY,
    OrderRecord: RecordKind.ORDER,
    PaymentRecord: RecordKind.PAYMENT,
}
_MONEY_LIMIT = Decimal(10) ** (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES)
CHANNELS = frozenset(Channel.values)
CATEGORIES = frozenset(ProductCategory.values)


# --- context and results ----------------------------------------------------------------------------------------------
def identity_namespace(provider: Provider, kind: RecordKind) -> str:
    """The identity-map resource of a record kind: the provider's first resource of that kind, else the kind
    itself. Pulled (sync writers) and pushed (outbox) objects share it, so they share one id space."""
    resource = next((r for r in provider.resources if r.kind == kind), None)
    return resource.name if resource else kind.value


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
        return cls(
            integration=integration,
            provider=provider,
            actor=Actor("integration", str(integration.pk), integration.name),
            namespaces={kind: identity_namespace(provider, kind) for kind in RecordKind},
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
        self.high_watermark = max_time(self.high_watermark, other.high_watermark)


@dataclass
class KindResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    local_ids: dict[str, int] = field(default_factory=dict)  # external id -> local pk
    written: set[str] = field(default_factory=set)  # external ids created or updated in this batch
    failed: dict[str, str] = field(default_factory=dict)  # external id -> error


def max_time(a: datetime | None, b: datetime | None) -> datetime | None:
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
class IdentityPlan:
    new: list[tuple[Any, str]] = field(default_factory=list)  # (record, hash)
    changed: list[tuple[Any, str, IdentityMapping]] = field(default_factory=list)
    unchanged: list[tuple[Any, IdentityMapping]] = field(default_factory=list)
    bump: list[IdentityMapping] = field(default_factory=list)  # newer time, same content


def dedupe(records: Iterable[Any]) -> list[Any]:
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


# How a batch is compared with what the identity map holds:
COMPARE = "compare"  # by content hash: unchanged records are not written
RESOLVE = "resolve"  # partial copies embedded in another record (an order's customer): resolve or create only
WRITE_THROUGH = "write_through"  # parts of a record that changed (an order's payments): written, not hashed


def identity_plan(ctx: WriteContext, kind: RecordKind, records: list[Any], *, mode: str = COMPARE) -> IdentityPlan:
    existing = {
        mapping.external_id: mapping
        for mapping in IdentityMapping.objects.filter(
            integration=ctx.integration,
            resource=ctx.namespaces[kind],
            external_id__in=[record.external_id for record in records],
        ).only("id", "external_id", "object_id", "content_hash", "source_updated_at")
    }
    plan = IdentityPlan()
    for record in records:
        mapping = existing.get(record.external_id)
        if mode == RESOLVE:
            if mapping is None:
                plan.new.append((record, ""))
            else:
                plan.unchanged.append((record, mapping))
            continue
        digest = content_hash(record) if mode == COMPARE else ""
        if mapping is None:
            plan.new.append((record, digest))
            continue
        incoming, stored = record.source_updated_at, mapping.source_updated_at
        if incoming is not None and stored is not None and incoming < stored:
            plan.unchanged.append((record, mapping))  # an older version: never overwrites a newer one
        elif mode == COMPARE and mapping.content_hash == digest:
            plan.unchanged.append((record, mapping))
            if incoming is not None and (stored is None or incoming > stored):
                mapping.source_updated_at = incoming
                plan.bump.append(mapping)
        else:
            plan.changed.append((record, digest, mapping))
    return plan


IDENTITY_COLUMNS = (
    "integration_id",
    "resource",
    "external_id",
    "content_type_id",
    "object_id",
    "content_hash",
    "source_updated_at",
    "created_at",
    "updated_at",
)


def identities_write(
    ctx: WriteContext,
    kind: RecordKind,
    model: type,
    created: list[tuple[Any, str, int]],
    updated: list[tuple[Any, str, IdentityMapping, int]],
    bump: list[IdentityMapping],
    *,
    keep_times: bool = True,
) -> None:
    """Write new identity rows (COPY) and update changed ones. Without `keep_times` (resolve-only partial
    copies) new rows get no source time, so the full record from its own resource is never taken as older."""
    now = timezone.now()
    content_type_id = ctx.content_type_id(model)
    integration_id, resource = ctx.integration.pk, ctx.namespaces[kind]
    bulk.copy_rows(
        IdentityMapping,
        IDENTITY_COLUMNS,
        [
            (
                integration_id,
                resource,
                record.external_id,
                content_type_id,
                local_id,
                digest,
                record.source_updated_at if keep_times else None,
                now,
                now,
            )
            for record, digest, local_id in created
        ],
    )
    rows = []
    for record, digest, mapping, local_id in updated:
        mapping.content_hash = digest
        mapping.object_id = local_id
        mapping.source_updated_at = max_time(mapping.source_updated_at, record.source_updated_at)
        mapping.updated_at = now
        rows.append(mapping)
    for mapping in bump:
        mapping.updated_at = now
        rows.append(mapping)
    if rows:
        IdentityMapping.objects.bulk_update(
            rows, ["content_hash", "object_id", "source_updated_at", "updated_at"], batch_size=ctx.batch_size
        )


def upsert(
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
    mode: str = COMPARE,
) -> KindResult:
    """The shared plan -> create/link -> update -> identity sequence.

    `build(record)` returns a new unsaved model instance; `apply(instance, record)` copies a record onto an
    existing instance and returns True when anything changed. `natural_key(record)` and
    `existing_by_natural_key(keys)` (key -> pk) let new records link to local rows created elsewhere.
    `before_create(instances)` completes new instances in one go (order numbers); `after_create(pairs)` /
    `after_update(pairs)` receive [(record, instance)] for dependent rows (order items).

    `mode`: COMPARE (by content hash); RESOLVE for partial copies inside another record (an order's
    customer): they only resolve or create the local row, never update a known one, and their identity gets no
    hash or time, so the full record from its own resource always overwrites what the partial copy created;
    WRITE_THROUGH for parts of a record already known to have changed (its payments): written without hashing,
    still never over a newer version.
    """
    result = KindResult()
    plan = identity_plan(ctx, kind, dedupe(records), mode=mode)
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
        result.written.add(record.external_id)
        if mapping is None:
            created_identities.append((record, digest, obj.pk))
        else:
            updated_identities.append((record, digest, mapping, obj.pk))
        result.created += mapping is None
        result.updated += mapping is not None
    for record, digest, mapping, instance in updates:
        result.local_ids[record.external_id] = instance.pk
        result.written.add(record.external_id)
        if mapping is None:  # a new source record linked to an existing local row by its natural key
            created_identities.append((record, digest, instance.pk))
            result.updated += 1
        else:
            updated_identities.append((record, digest, mapping, instance.pk))
            result.updated += 1
    identities_write(ctx, kind, model, created_identities, updated_identities, plan.bump, keep_times=mode != RESOLVE)
    return result
