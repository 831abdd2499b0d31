"""Stock on hand changes only here, and every change leaves a StockMovement saying who, by how much and why."""

from collections.abc import Mapping

from django.db import transaction
from django.utils import timezone

from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict, ValidationFailed
from orders.models import Order, Product, StockMovement, StockReason

from .common import invalid


def _check_reason(reason: str) -> None:
    if reason not in StockReason.values:
        raise invalid("reason", f"Unknown stock reason '{reason}'. Choose one of: {', '.join(StockReason.values)}.")


def stock_adjust(
    *,
    product: Product,
    delta: int,
    reason: str,
    actor: Actor,
    note: str = "",
    order: Order | None = None,
) -> StockMovement:
    """Add `delta` (negative to remove) to a product's stock on hand and record the movement.

    The product row is locked for the read-modify-write, so concurrent adjustments serialize instead of losing
    updates. Stock never goes below zero: that is a Conflict naming what is on hand.
    """
    if delta == 0:
        raise invalid("delta", "A stock adjustment needs a non-zero delta.")
    _check_reason(reason)
    with transaction.atomic():
        locked = Product.objects.select_for_update().only("id", "stock_on_hand", "sku").get(pk=product.pk)
        new_stock = locked.stock_on_hand + delta
        if new_stock < 0:
            raise Conflict(
                f"Not enough stock of {locked.sku}: {locked.stock_on_hand} on hand, {-delta} requested.",
                code="insufficient_stock",
                details={"sku": locked.sku, "stock_on_hand": locked.stock_on_hand, "delta": delta},
            )
        Product.objects.filter(pk=locked.pk).update(stock_on_hand=new_stock, updated_at=timezone.now())
        movement = StockMovement.objects.create(
            product=locked,
            delta=delta,
            stock_after=new_stock,
            reason=reason,
            note=note[:500],
            order=order,
            **actor.as_fields(),
        )
    product.stock_on_hand = new_stock
    return movement


def stock_levels_set_bulk(
    *,
    levels: Mapping[int, int],
    reason: str,
    actor: Actor,
    note: str = "",
) -> list[StockMovement]:
    """Set absolute stock levels for many products at once (inventory sync), one movement per real change.

    `levels` maps product id to the quantity the source reports. Products whose stock already matches get no
    movement; unknown ids are ignored (the caller maps SKUs to ids). Rows are locked in id order so two bulk
    writers cannot deadlock. A negative level is refused before anything changes.
    """
    negative = {pid: qty for pid, qty in levels.items() if qty < 0}
    if negative:
        raise ValidationFailed(
            "Stock levels cannot be negative.", details={"levels": {str(k): v for k, v in negative.items()}}
        )
    _check_reason(reason)
    if not levels:
        return []
    now = timezone.now()
    with transaction.atomic():
        products = list(
            Product.objects.select_for_update().filter(pk__in=list(levels)).order_by("pk").only("id", "stock_on_hand")
        )
        changed, movements = [], []
        for product in products:
            target = levels[product.pk]
            if target == product.stock_on_hand:
                continue
            movements.append(
                StockMovement(
                    product=product,
                    delta=target - product.stock_on_hand,
                    stock_after=target,
                    reason=reason,
                    note=note[:500],
                    created_at=now,
                    **actor.as_fields(),
                )
            )
            product.stock_on_hand = target
            product.updated_at = now
            changed.append(product)
        Product.objects.bulk_update(changed, ["stock_on_hand", "updated_at"], batch_size=500)
        return StockMovement.objects.bulk_create(movements, batch_size=500)


def stock_movements_record_bulk(
    *,
    deltas: Mapping[int, int],
    reason: str,
    actor: Actor,
    note: str = "",
) -> list[StockMovement]:
    """Apply relative changes (product id -> delta) to many products in one transaction.

    All or nothing: if any product would go below zero, nothing changes and the Conflict lists every shortfall.
    """
    _check_reason(reason)
    deltas = {pid: delta for pid, delta in deltas.items() if delta}
    if not deltas:
        return []
    with transaction.atomic():
        current = dict(
            Product.objects.select_for_update()
            .filter(pk__in=list(deltas))
            .order_by("pk")
            .values_list("pk", "stock_on_hand")
        )
        short = {str(pid): current[pid] for pid, delta in deltas.items() if pid in current and current[pid] + delta < 0}
        if short:
            raise Conflict(
                "Not enough stock for some products.", code="insufficient_stock", details={"stock_on_hand": short}
            )
        return stock_levels_set_bulk(
            levels={pid: current[pid] + delta for pid, delta in deltas.items() if pid in current},
            reason=reason,
            actor=actor,
            note=note,
        )
