"""Products (one row per SKU) and inventory (stock levels through audited stock movements)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone

from integrations.providers.base import RecordKind
from integrations.records import InventoryRecord, ProductRecord
from integrations.sync.writers.base import (
    CATEGORIES,
    KindResult,
    WriteContext,
    dedupe,
    identities_write,
    identity_plan,
    upsert,
)
from orders.models import (
    Product,
    ProductCategory,
    StockReason,
)
from orders.services.stock import stock_levels_set_bulk


# --- products ---------------------------------------------------------------------------------------------------------
def _product_values(record: ProductRecord) -> dict[str, Any]:
    return {
        "sku": record.sku,
        "name": (record.name or record.sku)[:200],
        "price": record.price,
        "currency": record.currency,
        "category": record.category if record.category in CATEGORIES else ProductCategory.OTHER,
        "metal": record.metal[:64],
        "gemstone": record.gemstone[:64],
        "active": record.active,
        "source_updated_at": record.source_updated_at,
    }


def write_products(ctx: WriteContext, records: list[ProductRecord]) -> KindResult:
    now = timezone.now()

    def apply(product: Product, record: ProductRecord) -> bool:
        values = _product_values(record)
        changed = any(getattr(product, name) != value for name, value in values.items())
        for name, value in values.items():
            setattr(product, name, value)
        product.updated_at = now
        return changed

    return upsert(
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
def write_inventory(ctx: WriteContext, records: list[InventoryRecord]) -> KindResult:
    """Stock levels by SKU, through `stock_levels_set_bulk` so every change is a StockMovement by this
    integration. A SKU we do not know fails alone (retry it after the product sync has brought the SKU in)."""
    records = dedupe(records)
    products = dict(Product.objects.filter(sku__in={r.sku for r in records}).values_list("sku", "pk"))
    result = KindResult()
    known = []
    for record in records:
        if record.sku in products:
            known.append(record)
        else:
            result.failed[record.external_id] = f"unknown SKU '{record.sku}': sync products first"
    plan = identity_plan(ctx, RecordKind.INVENTORY, known)
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
    identities_write(ctx, RecordKind.INVENTORY, Product, created, updated, plan.bump)
    result.created, result.updated, result.unchanged = len(created), len(updated), len(plan.unchanged)
    for record in known:
        result.local_ids[record.external_id] = products[record.sku]
    return result
