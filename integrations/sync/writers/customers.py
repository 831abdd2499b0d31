"""Customers: linked to existing ones by email (case-insensitive), never duplicated."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models.functions import Lower
from django.utils import timezone

from integrations.providers.base import RecordKind
from integrations.records import CustomerRecord
from integrations.sync.writers.base import (
    COMPARE,
    KindResult,
    WriteContext,
    upsert,
)
from orders.models import (
    Customer,
)


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


def write_customers(ctx: WriteContext, records: list[CustomerRecord], *, mode: str = COMPARE) -> KindResult:
    now = timezone.now()

    def by_email(keys: set[str]) -> dict[str, int]:
        # `exclude(email="")` repeats the unique index's predicate so PostgreSQL can use that (partial) index.
        matches = Customer.objects.exclude(email="").annotate(email_ci=Lower("email")).filter(email_ci__in=keys)
        return dict(matches.values_list("email_ci", "pk"))

    return upsert(
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
        mode=mode,
    )
