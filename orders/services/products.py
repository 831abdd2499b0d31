"""Product writes. Stock on hand is not a plain field here: it changes through `stock_adjust` (audited)."""

from decimal import Decimal

from django.db import IntegrityError, transaction

from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict, ValidationFailed
from orders.models import Product, StockReason

from .common import check_currency, invalid, money_error, reject_unknown
from .stock import stock_adjust

PRODUCT_FIELDS = frozenset(
    {"sku", "name", "category", "metal", "gemstone", "description", "price", "currency", "active", "source_updated_at"}
)
_DUPLICATE_SKU = {"fields": {"sku": ["A product with this SKU already exists."]}}


def _check(data: dict, *, currency: str, price: Decimal) -> None:
    reject_unknown(data, PRODUCT_FIELDS)
    check_currency(currency)
    if message := money_error(price, currency):
        raise invalid("price", message)


def _save(product: Product) -> Product:
    try:
        with transaction.atomic():
            product.save()
    except IntegrityError as exc:
        raise ValidationFailed(details=_DUPLICATE_SKU) from exc
    return product


def product_create(*, actor: Actor, data: dict, stock_on_hand: int = 0) -> Product:
    """Create a product; opening stock is recorded as a first movement so the audit trail starts at zero."""
    _check(data, currency=data.get("currency", ""), price=data.get("price", Decimal("0")))
    if stock_on_hand < 0:
        raise invalid("stock_on_hand", "Must not be negative.")
    if Product.objects.filter(sku=data["sku"]).exists():
        raise ValidationFailed(details=_DUPLICATE_SKU)
    with transaction.atomic():
        product = _save(Product(**data))
        if stock_on_hand:
            stock_adjust(
                product=product, delta=stock_on_hand, reason=StockReason.RESTOCK, actor=actor, note="Opening stock."
            )
    return product


def product_update(*, product: Product, actor: Actor, data: dict) -> Product:
    _check(data, currency=data.get("currency", product.currency), price=data.get("price", product.price))
    if "sku" in data and Product.objects.filter(sku=data["sku"]).exclude(pk=product.pk).exists():
        raise ValidationFailed(details=_DUPLICATE_SKU)
    for name, value in data.items():
        setattr(product, name, value)
    return _save(product)


def product_delete(*, product: Product, actor: Actor) -> None:
    """Delete a product nobody bought and whose stock never moved; otherwise deactivate it instead."""
    if product.order_items.exists() or product.stock_movements.exists():
        raise Conflict(
            f"{product.sku} has sales or stock history; set active=false instead of deleting it.",
            code="has_history",
        )
    product.delete()
