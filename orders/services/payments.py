"""An order's payment status follows from its payments when a payment provider, not the store, reports them."""

from collections import defaultdict
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from orders.models import Order, Payment, PaymentRecordStatus, PaymentStatus

from .stats import order_stats_mark_dirty

_TAKEN = (PaymentRecordStatus.CAPTURED, PaymentRecordStatus.PARTIALLY_REFUNDED, PaymentRecordStatus.REFUNDED)


def payment_status_from(*, total: Decimal, captured: Decimal, refunded: Decimal, authorized: bool, current: str) -> str:
    """The order-level status for money captured and refunded against an order of `total`.

    With nothing captured and nothing authorized the current status is kept: a failed card attempt does not
    make a paid-at-counter order unpaid.
    """
    if captured > 0 and refunded >= captured:
        return PaymentStatus.REFUNDED
    if refunded > 0:
        return PaymentStatus.PARTIALLY_REFUNDED
    if captured > 0:
        return PaymentStatus.PAID if captured >= total else PaymentStatus.PARTIALLY_PAID
    if authorized:
        return PaymentStatus.AUTHORIZED
    return current


def order_payment_status_refresh(*, order_ids: set[int]) -> list[int]:
    """Recompute the payment status of `order_ids` from their payments in the order's currency; returns the ids of
    orders whose status changed. Two queries whatever the number of orders, plus one bulk update."""
    if not order_ids:
        return []
    sums: dict[int, list] = defaultdict(lambda: [Decimal(0), Decimal(0), False])
    with transaction.atomic():
        orders = {o.pk: o for o in Order.objects.select_for_update().filter(pk__in=order_ids)}
        payments = Payment.objects.filter(order_id__in=orders).values_list(
            "order_id", "currency", "status", "captured_amount", "refunded_amount"
        )
        for order_id, currency, status, captured, refunded in payments:
            if currency != orders[order_id].currency:
                continue  # money in another currency cannot settle this order; left for staff
            entry = sums[order_id]
            if status in _TAKEN:
                entry[0] += captured
                entry[1] += refunded
            elif status == PaymentRecordStatus.AUTHORIZED:
                entry[2] = True
        changed, now = [], timezone.now()
        for order in orders.values():
            captured, refunded, authorized = sums[order.pk]
            status = payment_status_from(
                total=order.total,
                captured=captured,
                refunded=refunded,
                authorized=authorized,
                current=order.payment_status,
            )
            if status != order.payment_status:
                order.payment_status, order.updated_at = status, now  # bulk_update skips auto_now
                changed.append(order)
        if changed:
            Order.objects.bulk_update(changed, ["payment_status", "updated_at"])
            order_stats_mark_dirty(days=[order.placed_at for order in changed])
    return [order.pk for order in changed]
