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

No per-row saves on this path: a 250-order page is about fifteen statements whatever its size. Validation that
needs no database happens before, per record, so a bad record fails alone (`BadRecordError`); a database error
inside a batch makes the caller retry that batch record by record to isolate the culprit.

The webhooks app writes through `records_write` too, so sync and webhooks share ordering and idempotency rules.
"""

from __future__ import annotations

from typing import Any

from integrations.providers.base import RecordKind
from integrations.sync.writers.base import (
    RECORD_KIND,
    WRITE_ORDER,
    Entry,
    WriteContext,
    WriteResult,
    content_hash,
    max_time,
    validate_record,
)
from integrations.sync.writers.customers import write_customers
from integrations.sync.writers.orders import write_orders, write_payments
from integrations.sync.writers.products import write_inventory, write_products

__all__ = ["Entry", "WriteContext", "WriteResult", "content_hash", "records_write", "validate_record"]

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
    by_kind: dict[RecordKind, list[Any]] = {kind: [] for kind in WRITE_ORDER}
    owner: dict[tuple[RecordKind, str], int] = {}
    for index, entry in enumerate(entries):
        for record in entry.records:
            kind = RECORD_KIND[type(record)]
            by_kind[kind].append(record)
            owner[(kind, record.external_id)] = index
            result.high_watermark = max_time(result.high_watermark, record.source_updated_at)
    for kind in WRITE_ORDER:
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
