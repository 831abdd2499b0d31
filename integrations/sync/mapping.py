"""Configured field mappings: small, validated overrides applied on top of a provider's default transform.

A mapping takes a value from the raw provider record by a dotted path (`note_attributes.0.value`), applies one
transform from a closed set, and sets one field of the canonical record. Only plain scalar/list fields of the
canonical records can be targeted; identity and ordering fields (`external_id`, `source_updated_at`) and nested
structures (items, payments, embedded customer) stay the provider's, so a mapping can never break idempotency.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError

from integrations.errors import BadRecordError
from integrations.providers.base import RecordKind
from integrations.records import CustomerRecord, InventoryRecord, OrderRecord, PaymentRecord, ProductRecord

RECORD_CLASSES = {
    RecordKind.CUSTOMER: CustomerRecord,
    RecordKind.PRODUCT: ProductRecord,
    RecordKind.INVENTORY: InventoryRecord,
    RecordKind.ORDER: OrderRecord,
    RecordKind.PAYMENT: PaymentRecord,
}

_PROTECTED = {"external_id", "source_updated_at", "items", "payments", "customer", "addresses", "placed_at"}
_MISSING = object()


def _kind_of(annotation) -> str | None:
    """Reduce a dataclass annotation to one of the value kinds a mapping can produce."""
    base = annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = set(typing.get_args(annotation)) - {type(None)}
        base = next(iter(args)) if len(args) == 1 else None
    origin = typing.get_origin(base) or base
    return {str: "text", Decimal: "decimal", bool: "boolean", int: "integer", list: "list"}.get(origin)


def mappable_fields(kind: RecordKind) -> dict[str, str]:
    """Field name -> value kind ("text", "decimal", "boolean", "integer", "list") for a record kind."""
    hints = typing.get_type_hints(RECORD_CLASSES[kind])
    out = {}
    for f in dataclasses.fields(RECORD_CLASSES[kind]):
        value_kind = _kind_of(hints[f.name])
        if f.name not in _PROTECTED and value_kind:
            out[f.name] = value_kind
    return out


# transform -> the value kind it produces (None: same as its input)
TRANSFORM_OUTPUT = {
    "none": None,
    "strip": "text",
    "lower": "text",
    "upper": "text",
    "title": "text",
    "split_comma": "list",
    "join_comma": "text",
    "boolean": "boolean",
    "decimal": "decimal",
    "integer": "integer",
}


def validate_field_mapping(*, provider, resource: str, external_path: str, local_field: str, transform: str) -> None:
    """Raise `ValidationError` (per field) unless the mapping can be applied to this provider's resource."""
    try:
        kind = provider.resource(resource).kind
    except KeyError:
        raise ValidationError({"resource": [f"'{resource}' is not a resource of {provider.name}."]}) from None
    fields = mappable_fields(kind)
    errors: dict[str, list[str]] = {}
    if local_field not in fields:
        errors["local_field"] = [f"'{local_field}' cannot be mapped; choose one of: {', '.join(sorted(fields))}."]
    if transform not in TRANSFORM_OUTPUT:
        errors["transform"] = [f"Unknown transform '{transform}'."]
    parts = external_path.split(".") if external_path else []
    if not parts or any(not part or not part.replace("_", "").replace("-", "").isalnum() for part in parts):
        errors["external_path"] = ["Use a dotted path of field names and list indexes, e.g. 'customer.note'."]
    if not errors:
        produced = TRANSFORM_OUTPUT[transform]
        wanted = fields[local_field]
        if produced is not None and produced != wanted:
            errors["transform"] = [f"'{transform}' gives a {produced} value but '{local_field}' needs {wanted}."]
    if errors:
        raise ValidationError(errors)


def get_path(raw: Any, path: str) -> Any:
    value = raw
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _coerce(value: Any, wanted: str) -> Any:
    if value is None:
        return None
    if wanted == "text":
        return (
            value if isinstance(value, str) else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        )
    if wanted == "list":
        return (
            [str(v) for v in value]
            if isinstance(value, list)
            else [p.strip() for p in str(value).split(",") if p.strip()]
        )
    if wanted == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "y", "on"}:
            return True
        if text in {"0", "false", "no", "n", "off", ""}:
            return False
        raise ValueError(f"'{value}' is not a yes/no value")
    if wanted == "decimal":
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"'{value}' is not a number") from None
    if wanted == "integer":
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"'{value}' is not a whole number") from None
    return value


def apply_transform(value: Any, transform: str, wanted: str) -> Any:
    if transform in {"strip", "lower", "upper", "title"}:
        value = getattr(_coerce(value, "text") or "", transform)()
    elif transform == "split_comma":
        value = _coerce(value, "list")
    elif transform == "join_comma":
        value = _coerce(value if isinstance(value, list) else _coerce(value, "list"), "text")
    return _coerce(value, wanted)


@dataclass(frozen=True)
class CompiledMapping:
    external_path: str
    local_field: str
    transform: str
    value_kind: str


def compile_mappings(rows, kind: RecordKind) -> list[CompiledMapping]:
    fields = mappable_fields(kind)
    return [
        CompiledMapping(row.external_path, row.local_field, row.transform, fields[row.local_field])
        for row in rows
        if row.enabled and row.local_field in fields
    ]


def apply_field_mappings(records: list, raw: dict, mappings: list[CompiledMapping], kind: RecordKind) -> None:
    """Set mapped fields on the records of `kind` produced from `raw` (in place). A path missing from the raw
    record leaves the provider's value; a value the transform cannot read fails the record alone."""
    if not mappings:
        return
    cls = RECORD_CLASSES[kind]
    targets = [record for record in records if isinstance(record, cls)]
    for mapping in mappings:
        value = get_path(raw, mapping.external_path)
        if value is _MISSING:
            continue
        try:
            value = apply_transform(value, mapping.transform, mapping.value_kind)
        except ValueError as exc:
            raise BadRecordError(f"field mapping {mapping.external_path} -> {mapping.local_field}: {exc}") from None
        if value is None and mapping.value_kind in {"text", "list", "decimal", "integer"}:
            continue
        for record in targets:
            setattr(record, mapping.local_field, value)
