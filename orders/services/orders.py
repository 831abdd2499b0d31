"""Order writes: create and update with server-computed totals, status transitions, deletion."""

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict, ValidationFailed
from orders.currencies import money_format, quantum
from orders.models import (
    Channel,
    Customer,
    FulfillmentStatus,
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
    PaymentStatus,
    Product,
)
from orders.transitions import DELETABLE_STATUSES, ITEMS_EDITABLE_STATUSES, allowed_next

from .common import check_currency, invalid, money_error, reject_unknown
from .numbers import order_numbers_allocate
from .stats import order_stats_mark_dirty

logger = logging.getLogger(__name__)
ZERO = Decimal("0")


@dataclass
class ItemInput:
    """One order line as a caller describes it; SKU and name default to the product's at sale time."""

    quantity: int
    unit_price: Decimal
    name: str = ""
    sku: str = ""
    product: Product | None = None
    attributes: dict = field(default_factory=dict)
    external_id: str = ""


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    discount_total: Decimal
    tax_total: Decimal
    shipping_total: Decimal
    total: Decimal
    line_totals: tuple[Decimal, ...]


def order_totals_compute(
    *,
    currency: str,
    items: list[ItemInput],
    discount_total: Decimal = ZERO,
    tax_total: Decimal = ZERO,
    shipping_total: Decimal = ZERO,
    expected_subtotal: Decimal | None = None,
    expected_total: Decimal | None = None,
) -> Totals:
    """Line totals, subtotal and total from the items: total = subtotal - discount + tax + shipping.

    Raises ValidationFailed (field errors in the API's `details.fields` shape) for an unknown currency, an
    amount with more decimals than the currency has, a negative amount or quantity, a discount larger than
    the order, or `expected_*` figures that differ from the computed ones.
    """
    check_currency(currency)
    errors: dict = {}
    if not items:
        errors["items"] = ["An order needs at least one item."]
    item_errors, line_totals = [], []
    for item in items:
        problems: dict[str, list[str]] = {}
        if item.quantity < 1:
            problems["quantity"] = ["Must be at least 1."]
        if message := money_error(item.unit_price, currency):
            problems["unit_price"] = [message]
        if not (item.name or (item.product and item.product.name)):
            problems["name"] = ["Give a name or a product."]
        item_errors.append(problems)
        line_totals.append((item.unit_price * item.quantity).quantize(quantum(currency)))
    if any(item_errors):
        errors["items"] = item_errors
    charges = {"discount_total": discount_total, "tax_total": tax_total, "shipping_total": shipping_total}
    for name, amount in charges.items():
        if message := money_error(amount, currency):
            errors[name] = [message]
    if errors:
        raise ValidationFailed(details={"fields": errors})

    subtotal = sum(line_totals, ZERO)
    total = subtotal - discount_total + tax_total + shipping_total
    if total < 0:
        raise ValidationFailed(
            details={
                "fields": {
                    "discount_total": [
                        f"The discount is larger than the order ({money_format(subtotal, currency)} {currency})."
                    ]
                }
            }
        )
    mismatches = {}
    if expected_subtotal is not None and expected_subtotal != subtotal:
        mismatches["subtotal"] = [
            f"Does not match the items: computed {money_format(subtotal, currency)}, "
            f"got {money_format(expected_subtotal, currency)}."
        ]
    if expected_total is not None and expected_total != total:
        mismatches["total"] = [
            f"Does not match the computed total {money_format(total, currency)} "
            f"(got {money_format(expected_total, currency)})."
        ]
    if mismatches:
        raise ValidationFailed(
            "The totals do not match the items.", code="totals_mismatch", details={"fields": mismatches}
        )
    return Totals(subtotal, discount_total, tax_total, shipping_total, total, tuple(line_totals))


def _build_items(order: Order, items: list[ItemInput], line_totals: tuple[Decimal, ...]) -> list[OrderItem]:
    return [
        OrderItem(
            order=order,
            product=item.product,
            position=position,
            sku=item.sku or (item.product.sku if item.product else ""),
            name=item.name or (item.product.name if item.product else ""),  # one of them: checked above
            quantity=item.quantity,
            unit_price=item.unit_price,
            line_total=line_total,
            attributes=item.attributes or {},
            external_id=item.external_id,
        )
        for position, (item, line_total) in enumerate(zip(items, line_totals, strict=True))
    ]


def _apply_totals(order: Order, totals: Totals) -> None:
    order.subtotal, order.discount_total = totals.subtotal, totals.discount_total
    order.tax_total, order.shipping_total, order.total = totals.tax_total, totals.shipping_total, totals.total


def _history_record(*, order: Order, from_status: str, to_status: str, actor: Actor, note: str = "") -> None:
    OrderStatusHistory.objects.create(
        order=order, from_status=from_status, to_status=to_status, note=note, **actor.as_fields()
    )


def order_create(
    *,
    actor: Actor,
    currency: str,
    items: list[ItemInput],
    customer: Customer | None = None,
    channel: str = Channel.IN_STORE,
    status: str = OrderStatus.PENDING,
    payment_status: str = PaymentStatus.UNPAID,
    fulfillment_status: str = FulfillmentStatus.UNFULFILLED,
    placed_at: datetime | None = None,
    due_date: date | None = None,
    notes: str = "",
    external_reference: str = "",
    discount_total: Decimal = ZERO,
    tax_total: Decimal = ZERO,
    shipping_total: Decimal = ZERO,
    expected_subtotal: Decimal | None = None,
    expected_total: Decimal | None = None,
    source_updated_at: datetime | None = None,
) -> Order:
    """Create an order with its items, a new number and a first status history row ('' -> status).

    `status` defaults to pending; importers may create an order directly in the status its source reports.
    """
    if status not in OrderStatus.values:
        raise invalid("status", f"Unknown status '{status}'.")
    totals = order_totals_compute(
        currency=currency,
        items=items,
        discount_total=discount_total,
        tax_total=tax_total,
        shipping_total=shipping_total,
        expected_subtotal=expected_subtotal,
        expected_total=expected_total,
    )
    with transaction.atomic():
        order = Order(
            number=order_numbers_allocate(count=1)[0],
            external_reference=external_reference,
            customer=customer,
            channel=channel,
            status=status,
            payment_status=payment_status,
            fulfillment_status=fulfillment_status,
            currency=currency,
            placed_at=placed_at or timezone.now(),
            due_date=due_date,
            notes=notes,
            source_updated_at=source_updated_at,
        )
        _apply_totals(order, totals)
        order.save()
        OrderItem.objects.bulk_create(_build_items(order, items, totals.line_totals))
        _history_record(order=order, from_status="", to_status=status, actor=actor, note="Order created.")
        order_stats_mark_dirty(days=[order.placed_at])
        _push_events(order, placed=True, paid=order.payment_status == PaymentStatus.PAID)
    return order


def _push_events(order: Order, *, placed: bool = False, paid: bool = False, completed: bool = False) -> None:
    """Queue the order's changes for the integrations that push them, in the caller's transaction (DESIGN.md
    "Sync (push)": the outbox row commits or rolls back with the change)."""
    from integrations.outbox import outbox_enqueue_for  # integrations builds on orders: import at call time

    if placed:
        outbox_enqueue_for(event="order.placed", obj=order)
    if paid:
        outbox_enqueue_for(event="order.paid", obj=order)
    if completed or (placed and order.status == OrderStatus.COMPLETED):
        outbox_enqueue_for(event="order.completed", obj=order)


def order_saved_directly(*, order: Order, created: bool, paid_before: str | None) -> None:
    """Queue the pushes for an order a form saved itself (the admin's order page edits the row, not through
    `order_update`): order.placed for a new order, order.paid when it became paid. Call it in the save's
    transaction, after the items and totals are saved."""
    became_paid = order.payment_status == PaymentStatus.PAID and paid_before != PaymentStatus.PAID
    _push_events(order, placed=created, paid=became_paid)


UPDATABLE_FIELDS = frozenset(
    {
        "customer",
        "channel",
        "currency",
        "payment_status",
        "fulfillment_status",
        "placed_at",
        "due_date",
        "notes",
        "external_reference",
        "discount_total",
        "tax_total",
        "shipping_total",
        "source_updated_at",
    }
)
_TOTALS_INPUTS = frozenset({"currency", "discount_total", "tax_total", "shipping_total"})
# Fields the stats read (besides status and totals): changing one marks the order's old and new day dirty.
_STATS_FIELDS = frozenset({"customer", "channel", "currency", "payment_status", "placed_at"})


def order_update(
    *,
    order: Order,
    actor: Actor,
    data: dict,
    items: list[ItemInput] | None = None,
    expected_subtotal: Decimal | None = None,
    expected_total: Decimal | None = None,
) -> Order:
    """Change an order's fields and, while it is pending or confirmed, replace its items.

    Totals are recomputed whenever items or an input of the totals change. Status is not a field here: it moves
    only through `order_transition`. Changing the currency needs the items again (their prices were in the old
    currency).
    """
    reject_unknown(data, UPDATABLE_FIELDS, "This field cannot be changed.")
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if items is not None and order.status not in ITEMS_EDITABLE_STATUSES:
            raise Conflict(
                f"Items of a {order.status} order cannot change.",
                code="items_locked",
                details={"status": order.status, "editable_statuses": list(ITEMS_EDITABLE_STATUSES)},
            )
        if "currency" in data and data["currency"] != order.currency and items is None:
            raise invalid("items", "Send the items again to change the currency.")
        placed_before, paid_before = order.placed_at, order.payment_status
        for name, value in data.items():
            setattr(order, name, value)
        recompute = items is not None or bool(_TOTALS_INPUTS & set(data))
        recompute = recompute or expected_subtotal is not None or expected_total is not None
        if recompute:
            current_items = items if items is not None else _stored_items(order)
            totals = order_totals_compute(
                currency=order.currency,
                items=current_items,
                discount_total=order.discount_total,
                tax_total=order.tax_total,
                shipping_total=order.shipping_total,
                expected_subtotal=expected_subtotal,
                expected_total=expected_total,
            )
            _apply_totals(order, totals)
            if items is not None:
                order.items.all().delete()
                OrderItem.objects.bulk_create(_build_items(order, items, totals.line_totals))
        order.save()
        if recompute or _STATS_FIELDS & set(data):
            order_stats_mark_dirty(days=[placed_before, order.placed_at])
        became_paid = order.payment_status == PaymentStatus.PAID and paid_before != PaymentStatus.PAID
        _push_events(order, paid=became_paid)
    logger.info("Order %s updated by %s", order.number, actor.label or actor.kind)
    return order


def _stored_items(order: Order) -> list[ItemInput]:
    return [
        ItemInput(quantity=item.quantity, unit_price=item.unit_price, name=item.name, sku=item.sku)
        for item in order.items.all()
    ]


def order_totals_recalculate(*, order: Order) -> Order:
    """Recompute line totals and order totals from the stored items (after the admin edits items inline)."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        stored = list(order.items.all())
        totals = order_totals_compute(
            currency=order.currency,
            items=[ItemInput(quantity=i.quantity, unit_price=i.unit_price, name=i.name or i.sku) for i in stored],
            discount_total=order.discount_total,
            tax_total=order.tax_total,
            shipping_total=order.shipping_total,
        )
        for item, line_total in zip(stored, totals.line_totals, strict=True):
            item.line_total = line_total
        OrderItem.objects.bulk_update(stored, ["line_total"])
        _apply_totals(order, totals)
        order.save(update_fields=["subtotal", "discount_total", "tax_total", "shipping_total", "total", "updated_at"])
        order_stats_mark_dirty(days=[order.placed_at])
    return order


def order_transition(*, order: Order, to_status: str, actor: Actor, note: str = "") -> Order:
    """Move an order to `to_status` along the transition table, recording who did it.

    The order row is locked first, so two concurrent transitions cannot both start from the same status. An
    illegal move is a Conflict whose details name the allowed next statuses.
    """
    if to_status not in OrderStatus.values:
        raise invalid("to_status", f"Unknown status '{to_status}'. Choose one of: {', '.join(OrderStatus.values)}.")
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        allowed = allowed_next(locked.status)
        if to_status not in allowed:
            allowed_text = ", ".join(allowed) if allowed else "none (final status)"
            raise Conflict(
                f"Order {locked.number} cannot move from '{locked.status}' to '{to_status}'. "
                f"Allowed next: {allowed_text}.",
                code="invalid_transition",
                details={"from_status": locked.status, "to_status": to_status, "allowed": list(allowed)},
            )
        from_status = locked.status
        locked.status = to_status
        locked.save(update_fields=["status", "updated_at"])
        _history_record(order=locked, from_status=from_status, to_status=to_status, actor=actor, note=note)
        order_stats_mark_dirty(days=[locked.placed_at])
        _push_events(locked, completed=to_status == OrderStatus.COMPLETED)
    order.status, order.updated_at = locked.status, locked.updated_at
    return locked


def order_delete(*, order: Order, actor: Actor) -> None:
    """Delete a pending or cancelled order (with its items, history and shipments).

    Orders with payments are kept: money records are never deleted by cascade.
    """
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.status not in DELETABLE_STATUSES:
            raise Conflict(
                f"Only pending or cancelled orders can be deleted; {locked.number} is {locked.status}.",
                code="not_deletable",
                details={"status": locked.status, "deletable_statuses": list(DELETABLE_STATUSES)},
            )
        if locked.payments.exists():
            raise Conflict(
                f"Order {locked.number} has payments and cannot be deleted; cancel it instead.",
                code="has_payments",
            )
        locked.delete()
        order_stats_mark_dirty(days=[locked.placed_at])
    logger.info("Order %s deleted by %s %s", order.number, actor.kind, actor.label or actor.id)
