"""Order lists (a constant number of queries however many rows), search and customer lifetime figures."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, Max, Min, Prefetch, Q, QuerySet, Sum

from orders.models import Customer, Order, OrderItem, OrderStatusHistory, Product
from orders.transitions import NON_REVENUE_STATUSES


def order_list_queryset() -> QuerySet[Order]:
    """Orders to filter, sort and page; a page's rows are read with `order_list_rows`."""
    return Order.objects.all()


@dataclass(slots=True)
class CustomerSummary:
    pk: int
    name: str
    email: str


@dataclass(slots=True)
class OrderItemRow:
    pk: int
    product_id: int | None
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    attributes: dict
    external_id: str


@dataclass(slots=True)
class OrderRow:
    """An order as the lists show it: the fields of `OrderOutputSerializer`, the customer's summary, the items."""

    pk: int
    number: str
    external_reference: str
    channel: str
    status: str
    payment_status: str
    fulfillment_status: str
    currency: str
    subtotal: Decimal
    discount_total: Decimal
    tax_total: Decimal
    shipping_total: Decimal
    total: Decimal
    placed_at: datetime
    due_date: date | None
    notes: str
    created_at: datetime
    updated_at: datetime
    number_value: int  # what `sort=number` sorts by, for the cursor
    customer: CustomerSummary | None
    items: list[OrderItemRow]


_ORDER_COLUMNS = [name for name in OrderRow.__slots__ if name not in ("pk", "customer", "items")]
_ITEM_COLUMNS = [name for name in OrderItemRow.__slots__ if name != "pk"]


def order_list_rows(*, queryset: QuerySet[Order], start: int, stop: int) -> list[OrderRow]:
    """Rows `start` to `stop` of a sorted orders queryset, with customer summaries and items: two queries.

    Read as plain tuples, not model instances: a list page of 50 orders with their items builds ~200 objects,
    and Django's model and prefetch machinery was most of a list request's time.
    """
    orders = list(
        queryset.values_list("pk", *_ORDER_COLUMNS, "customer_id", "customer__name", "customer__email")[start:stop]
    )
    items: dict[int, list[OrderItemRow]] = {order[0]: [] for order in orders}
    if orders:
        for order_id, *values in (
            OrderItem.objects.filter(order_id__in=list(items))
            .order_by("order_id", "position", "id")
            .values_list("order_id", "pk", *_ITEM_COLUMNS)
        ):
            items[order_id].append(OrderItemRow(*values))
    rows = []
    for pk, *values, customer_id, customer_name, customer_email in orders:
        customer = None if customer_id is None else CustomerSummary(customer_id, customer_name, customer_email)
        rows.append(OrderRow(pk, *values, customer, items[pk]))  # type: ignore[call-arg]  # the columns, in order
    return rows


def order_detail_queryset() -> QuerySet[Order]:
    """One order with everything staff see on its page: customer, items, status history, payments, shipments."""
    return (
        Order.objects.select_related("customer")
        .defer("customer__addresses", "customer__tags", "customer__notes", "customer__phone")
        .prefetch_related(
            Prefetch("items", queryset=OrderItem.objects.order_by("position", "id")),
            Prefetch("status_history", queryset=OrderStatusHistory.objects.order_by("created_at", "id")),
            "payments",
            "shipments",
        )
    )


@dataclass(frozen=True)
class OrderSearch:
    """Orders whose number or external reference, customer name or email, or an item's SKU or name contains
    `term` (any case), in the three query shapes a list needs.

    Each branch is a plain `UPPER(col) LIKE` that PostgreSQL answers from a trigram GIN index (migration 0002);
    one OR across joined tables would force a sequential scan of every order. The branches are combined as:

    - `matching()`: the union of the branches' order ids. Costs what the matches cost: right when few match.
    - `walking()`: "customer among the matching customers, or id among the other branches' ids". PostgreSQL
      walks the sort's index and checks each row against two hashed sets, stopping when the page is full: right
      when many match (a common last name: the first page is found after a few thousand rows), wrong when few do
      (it would walk the whole table).
    - `count_upto()`: orders of matching customers plus the other branches' orders, minus the overlap. Each part
      reads indexes only and stops at the limit, where counting the union would first build all of it.
    """

    term: str

    def customer_ids(self) -> QuerySet:
        term = self.term
        return Customer.objects.filter(Q(name__icontains=term) | Q(email__icontains=term)).values("id").order_by()

    def _by_order(self) -> QuerySet:
        term = self.term
        return Order.objects.filter(Q(number__icontains=term) | Q(external_reference__icontains=term)).values("id")

    def _by_item(self) -> QuerySet:
        term = self.term
        return OrderItem.objects.filter(Q(sku__icontains=term) | Q(name__icontains=term)).values("order_id")

    def other_order_ids(self) -> QuerySet:
        """Orders matching by their own number or external reference, or by an item."""
        return self._by_order().order_by().union(self._by_item().order_by())

    def matching(self) -> Q:
        by_customer = Order.objects.filter(customer_id__in=self.customer_ids()).values("id").order_by()
        return Q(id__in=by_customer.union(self._by_order().order_by(), self._by_item().order_by()))

    def walking(self) -> Q:
        return Q(customer_id__in=self.customer_ids()) | Q(id__in=self.other_order_ids())

    def count_upto(self, orders: QuerySet[Order], limit: int) -> int:
        """How many of `orders` match, if at most `limit`; else `limit + 1`. One query.

        Orders of matching customers, plus orders matching otherwise, minus those counted twice; each of the three
        counts stops at `limit + 1` (if either of the first two exceeds the limit, so does the total). Written as
        a sum rather than "otherwise and not of a matching customer", which PostgreSQL plans as a full scan.
        """
        by_customer = orders.filter(customer_id__in=self.customer_ids())
        otherwise = orders.filter(id__in=self.other_order_ids())
        both = otherwise.filter(customer_id__in=self.customer_ids())
        parts = []
        for part in (by_customer, otherwise, both):
            try:
                sql, params = part.order_by().values("id")[: limit + 1].query.sql_with_params()
            except EmptyResultSet:
                sql, params = "SELECT 1 WHERE 1 = 0", ()
            parts.append((f"(SELECT COUNT(*) FROM ({sql}) AS part)", list(params)))  # noqa: S608
        (customers_sql, customers_params), (others_sql, others_params), (twice_sql, twice_params) = parts
        # The overlap is counted only when both sides matched (rarely): each branch costs a trigram lookup every
        # time it is evaluated. Every SQL part is Django-compiled with its parameters apart.
        overlap = f"CASE WHEN counted.customers > 0 AND counted.others > 0 THEN {twice_sql} ELSE 0 END"
        sql = (
            f"SELECT counted.customers, counted.others, {overlap} "  # noqa: S608
            f"FROM (SELECT {customers_sql} AS customers, {others_sql} AS others) AS counted"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*twice_params, *customers_params, *others_params])
            customers, others, twice = cursor.fetchone()
        if customers > limit or others > limit:
            return limit + 1
        return customers + others - twice


def order_search(*, queryset: QuerySet[Order], term: str) -> QuerySet[Order]:
    """`queryset` narrowed to the orders matching `term` (see `OrderSearch`); unchanged for a blank term."""
    term = term.strip()
    if not term:
        return queryset
    return queryset.filter(OrderSearch(term).matching())


def order_currencies_in_use() -> list[str]:
    """The currencies orders are in, ascending: one index probe per currency (a recursive "next greater" walk
    over the currency index) instead of a DISTINCT over every order, which took 60 ms at a million orders."""
    table = connection.ops.quote_name(Order._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH RECURSIVE used(code) AS ("  # noqa: S608 (the table name comes from the model)
            f"SELECT MIN(currency) FROM {table} "
            f"UNION ALL SELECT (SELECT MIN(currency) FROM {table} WHERE currency > used.code) FROM used "
            f"WHERE used.code IS NOT NULL) SELECT code FROM used WHERE code IS NOT NULL"
        )
        return [code for (code,) in cursor.fetchall()]


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
    queryset = (
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
    rows = list(queryset)
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
