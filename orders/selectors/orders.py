"""List querysets (a constant number of queries however many rows), search and customer lifetime figures."""

from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Max, Min, Prefetch, Q, QuerySet, Sum

from orders.models import Customer, Order, OrderItem, OrderStatusHistory, Product
from orders.transitions import NON_REVENUE_STATUSES


def order_list_queryset() -> QuerySet[Order]:
    """Orders with customer (joined, only the summary columns) and items (one prefetch query): two queries
    per page."""
    return (
        Order.objects.select_related("customer")
        .defer("customer__addresses", "customer__tags", "customer__notes", "customer__phone")
        .prefetch_related(Prefetch("items", queryset=OrderItem.objects.order_by("position", "id")))
    )


def order_detail_queryset() -> QuerySet[Order]:
    """One order with everything staff see on its page: items, status history, payments and shipments."""
    return order_list_queryset().prefetch_related(
        Prefetch("status_history", queryset=OrderStatusHistory.objects.order_by("created_at", "id")),
        "payments",
        "shipments",
    )


def order_search(*, queryset: QuerySet[Order], term: str) -> QuerySet[Order]:
    """Orders whose number or external reference, customer name or email, or an item's SKU or name contains
    `term` (any case).

    Written as the union of three id sets rather than one OR across joins: each branch is a plain
    `UPPER(col) LIKE` that PostgreSQL answers from its trigram GIN index (migration 0002), where an OR across
    joined tables would force a sequential scan of every order.
    """
    term = term.strip()
    if not term:
        return queryset
    by_order = Order.objects.filter(Q(number__icontains=term) | Q(external_reference__icontains=term))
    customers = Customer.objects.filter(Q(name__icontains=term) | Q(email__icontains=term)).values("id").order_by()
    by_customer = Order.objects.filter(customer_id__in=customers)
    by_item = OrderItem.objects.filter(Q(sku__icontains=term) | Q(name__icontains=term)).values("order_id").order_by()
    ids = by_order.values("id").order_by().union(by_customer.values("id").order_by(), by_item)
    return queryset.filter(id__in=ids)


def customer_search(*, queryset: QuerySet[Customer], term: str) -> QuerySet[Customer]:
    term = term.strip()
    if not term:
        return queryset
    return queryset.filter(Q(name__icontains=term) | Q(email__icontains=term) | Q(phone__icontains=term))


def product_search(*, queryset: QuerySet[Product], term: str) -> QuerySet[Product]:
    term = term.strip()
    if not term:
        return queryset
    return queryset.filter(Q(sku__icontains=term) | Q(name__icontains=term))


def customer_lifetime(*, customer: Customer) -> dict:
    """Orders placed, first and last order time, and revenue per currency (cancelled and refunded orders do not
    count as revenue). One query."""
    rows = (
        Order.objects.filter(customer=customer)
        .order_by()
        .values("currency")
        .annotate(
            orders=Count("id"),
            revenue_orders=Count("id", filter=~Q(status__in=NON_REVENUE_STATUSES)),
            revenue=Sum("total", filter=~Q(status__in=NON_REVENUE_STATUSES)),
            first=Min("placed_at"),
            last=Max("placed_at"),
        )
        .order_by("currency")
    )
    rows = list(rows)
    firsts: list[datetime] = [row["first"] for row in rows]
    lasts: list[datetime] = [row["last"] for row in rows]
    return {
        "orders": sum(row["orders"] for row in rows),
        "first_order_at": min(firsts) if firsts else None,
        "last_order_at": max(lasts) if lasts else None,
        "revenue": [
            {"currency": row["currency"], "amount": row["revenue"] or Decimal("0"), "orders": row["revenue_orders"]}
            for row in rows
        ],
    }
