"""Orders with items, embedded customers and payments; and payments on their own."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from integrations.models import IdentityMapping
from integrations.providers.base import RecordKind
from integrations.records import OrderRecord, PaymentRecord
from integrations.sync import bulk
from integrations.sync.writers.base import (
    CHANNELS,
    COMPARE,
    RESOLVE,
    WRITE_THROUGH,
    KindResult,
    WriteContext,
    dedupe,
    upsert,
)
from integrations.sync.writers.customers import write_customers
from orders.models import (
    Channel,
    Order,
    OrderItem,
    OrderStatusHistory,
    Payment,
    Product,
)
from orders.services.numbers import order_numbers_allocate
from orders.services.payments import order_payment_status_refresh
from orders.services.stats import order_stats_mark_dirty


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
    ctx: WriteContext,
    records: list[PaymentRecord],
    *,
    order_ids: dict[str, int] | None = None,
    customer_ids: dict[str, int | None] | None = None,
    mode: str = COMPARE,
) -> KindResult:
    """Payments, linked to their order and customer: the order writer passes both for embedded payments
    (payment external id -> local id); otherwise the order is resolved from `order_reference` through the
    identity map or the CRM order number, and the customer through the identity map."""
    now = timezone.now()
    embedded = order_ids is not None
    order_ids = dict(order_ids or {})
    known_customers = {key: pk for key, pk in (customer_ids or {}).items() if pk is not None}
    unresolved = {r.order_reference for r in records if r.order_reference and r.external_id not in order_ids}
    by_reference: dict[str, int] = {}
    if unresolved:
        by_reference.update(
            IdentityMapping.objects.filter(
                integration=ctx.integration, resource=ctx.namespaces[RecordKind.ORDER], external_id__in=unresolved
            ).values_list("external_id", "object_id")
        )
        by_reference.update(Order.objects.filter(number__in=unresolved - set(by_reference)).values_list("number", "pk"))
        # Last, the source's own order number (e.g. a Shopify "#1001" a Stripe payment's metadata names).
        by_reference.update(
            Order.objects.filter(external_reference__in=unresolved - set(by_reference)).values_list(
                "external_reference", "pk"
            )
        )
    customer_refs = {
        r.customer_external_id for r in records if r.customer_external_id and r.external_id not in known_customers
    }
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
        customer_id = known_customers.get(record.external_id) or customers.get(record.customer_external_id)
        return _payment_values(record, order_id, customer_id)

    def apply(payment: Payment, record: PaymentRecord) -> bool:
        new_values = values(record)
        if new_values["order_id"] is None:
            new_values["order_id"] = payment.order_id  # never unlink a matched payment
        changed = any(getattr(payment, name) != value for name, value in new_values.items())
        for name, value in new_values.items():
            setattr(payment, name, value)
        payment.updated_at = now
        return changed

    result = upsert(
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
        mode=mode,
    )
    if not embedded:
        # A payment provider's payments settle the CRM order they belong to (an order's own source reports
        # its payment status itself, so embedded payments leave it alone).
        written = [result.local_ids[key] for key in result.written if key in result.local_ids]
        linked = Payment.objects.filter(pk__in=written, order__isnull=False).values_list("order_id", flat=True)
        order_payment_status_refresh(order_ids=set(linked))
    return result


# --- orders -----------------------------------------------------------------------------------------------------------
def _order_values(record: OrderRecord, customer_id: int | None) -> dict[str, Any]:
    return {
        "external_reference": record.external_number[:100],
        "customer_id": customer_id,
        "channel": record.channel if record.channel in CHANNELS else Channel.OTHER,
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


def write_orders(ctx: WriteContext, records: list[OrderRecord]) -> KindResult:
    """Orders with their items, embedded customer and payments. New orders get a CRM number and a creation
    entry in the status history; a changed order has its items replaced and, when the source moved its status,
    a history entry saying the integration did it (the source system is authoritative for its own orders)."""
    now = timezone.now()
    records = dedupe(records)
    customers = [r.customer for r in records if r.customer is not None]
    customer_ids = write_customers(ctx, customers, mode=RESOLVE).local_ids if customers else {}
    skus = {item.sku for r in records for item in r.items if item.sku}
    product_ids = dict(Product.objects.filter(sku__in=skus).values_list("sku", "pk")) if skus else {}
    history: list[tuple] = []
    note = f"{ctx.source_label} ({ctx.integration.name})"
    actor = tuple(ctx.actor.as_fields().values())  # actor_type, actor_id, actor_label

    def customer_of(record: OrderRecord) -> int | None:
        return customer_ids.get(record.customer.external_id) if record.customer is not None else None

    def items_of(order: Order, record: OrderRecord) -> list[tuple]:
        return [
            (
                order.pk,
                product_ids.get(item.sku),
                position,
                item.sku[:64],
                (item.name or item.sku)[:200],
                item.quantity,
                item.unit_price,
                item.unit_price * item.quantity,
                item.attributes,
                item.external_id[:100],
            )
            for position, item in enumerate(record.items)
        ]

    def build(record: OrderRecord) -> Order:
        return Order(**_order_values(record, customer_of(record)), created_at=now, updated_at=now)

    touched_days: list = []

    def after_create(pairs: list[tuple[OrderRecord, Order]]) -> None:
        touched_days.extend(order.placed_at for _, order in pairs)
        items = [item for record, order in pairs for item in items_of(order, record)]
        bulk.copy_rows(OrderItem, ITEM_COLUMNS, items)
        history.extend((order.pk, "", order.status, note, now, *actor) for _, order in pairs)

    previous_status: dict[int, str] = {}

    def apply(order: Order, record: OrderRecord) -> bool:
        values = _order_values(record, customer_of(record))
        if values["customer_id"] is None:
            values["customer_id"] = order.customer_id
        previous_status[order.pk] = order.status
        touched_days.append(order.placed_at)  # the day it leaves, if the source moved it
        for name, value in values.items():
            setattr(order, name, value)
        order.updated_at = now
        return True  # the content hash already said it changed

    def after_update(pairs: list[tuple[OrderRecord, Order]]) -> None:
        touched_days.extend(order.placed_at for _, order in pairs)
        OrderItem.objects.filter(order__in=[order.pk for _, order in pairs]).delete()
        bulk.copy_rows(OrderItem, ITEM_COLUMNS, [item for record, order in pairs for item in items_of(order, record)])
        history.extend(
            (order.pk, previous_status[order.pk], order.status, note, now, *actor)
            for _, order in pairs
            if previous_status.get(order.pk, order.status) != order.status
        )

    result = upsert(
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
    bulk.copy_rows(OrderStatusHistory, HISTORY_COLUMNS, history)
    if touched_days:
        order_stats_mark_dirty(days=touched_days)  # keeps GET /api/orders/stats/ exact (orders/services/stats.py)
    # An order's hash covers its payments: only orders created or changed in this batch can have new ones.
    payments = [payment for r in records if r.external_id in result.written for payment in r.payments]
    if payments:
        order_of_payment = {p.external_id: result.local_ids[r.external_id] for r in records for p in r.payments}
        customer_of_payment = {p.external_id: customer_of(r) for r in records for p in r.payments}
        write_payments(ctx, payments, order_ids=order_of_payment, customer_ids=customer_of_payment, mode=WRITE_THROUGH)
    return result


ITEM_COLUMNS = (
    "order_id",
    "product_id",
    "position",
    "sku",
    "name",
    "quantity",
    "unit_price",
    "line_total",
    "attributes",
    "external_id",
)
HISTORY_COLUMNS = (
    "order_id",
    "from_status",
    "to_status",
    "note",
    "created_at",
    "actor_type",
    "actor_id",
    "actor_label",
)


def _assign_numbers(orders: list[Order]) -> None:
    """CRM numbers for a batch of new orders, allocated in one call (a sequence on PostgreSQL)."""
    for order, number in zip(orders, order_numbers_allocate(count=len(orders)), strict=True):
        order.number = number
