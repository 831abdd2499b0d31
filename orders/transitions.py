"""The one table of allowed order status transitions. Services, the API and the admin all read it from here."""

from .models import OrderStatus as S

ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.PENDING: (S.CONFIRMED, S.CANCELLED),
    # Stock pieces skip production: confirmed -> ready.
    S.CONFIRMED: (S.IN_PRODUCTION, S.READY, S.CANCELLED),
    S.IN_PRODUCTION: (S.READY, S.CANCELLED),
    # Collected in store: ready -> delivered without a shipment.
    S.READY: (S.SHIPPED, S.DELIVERED, S.CANCELLED),
    S.SHIPPED: (S.DELIVERED, S.REFUNDED),
    S.DELIVERED: (S.COMPLETED, S.REFUNDED),
    S.COMPLETED: (S.REFUNDED,),
    S.CANCELLED: (),
    S.REFUNDED: (),
}

# Orders in these statuses do not count as revenue (stats, customer lifetime figures).
NON_REVENUE_STATUSES: tuple[str, ...] = (S.CANCELLED, S.REFUNDED)
# Orders in these statuses are finished: a past due date no longer makes them overdue.
CLOSED_STATUSES: tuple[str, ...] = (S.DELIVERED, S.COMPLETED, S.CANCELLED, S.REFUNDED)
# Items (and so totals) can be replaced only before production starts.
ITEMS_EDITABLE_STATUSES: tuple[str, ...] = (S.PENDING, S.CONFIRMED)
DELETABLE_STATUSES: tuple[str, ...] = (S.PENDING, S.CANCELLED)


def allowed_next(status: str) -> tuple[str, ...]:
    return ALLOWED_TRANSITIONS.get(status, ())
