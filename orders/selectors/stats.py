"""Order statistics for a date range: counts and revenue by status, per period (gaps filled), average order
value, top customers, top products and payment-status breakdown.

Revenue is always per currency: sums of different currencies are never added. Revenue counts orders that are
not cancelled or refunded; counts by status and payment status include every order. Dates are inclusive and
read in UTC (the project's time zone). Four queries whatever the range (plus a SET on PostgreSQL).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, DateField, F, Max, Q, QuerySet, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from orders.models import Customer, Order, OrderItem, OrderStatus, PaymentStatus
from orders.transitions import NON_REVENUE_STATUSES

INTERVALS = ("day", "week", "month")
TOP_N = 10
STATS_WORK_MEM = "64MB"
ZERO = Decimal("0")


@dataclass(frozen=True)
class StatsRange:
    date_from: date
    date_to: date
    interval: str
    channels: tuple[str, ...] = ()


def _periods(date_from: date, date_to: date, interval: str) -> list[date]:
    """Every period start from the one containing `date_from` to the one containing `date_to`."""
    if interval == "day":
        start, step = date_from, None
    elif interval == "week":
        start, step = date_from - timedelta(days=date_from.weekday()), None
    else:
        start, step = date_from.replace(day=1), "month"
    periods, current = [], start
    while current <= date_to:
        periods.append(current)
        if step == "month":
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            current += timedelta(days=1 if interval == "day" else 7)
    return periods


def _amounts(by_currency: dict[str, Decimal], currencies: list[str]) -> list[dict]:
    return [{"currency": code, "amount": by_currency.get(code, ZERO)} for code in currencies]


def _base(stats_range: StatsRange) -> QuerySet[Order]:
    tz = timezone.get_current_timezone()
    start = datetime.combine(stats_range.date_from, time.min, tzinfo=tz)
    end = datetime.combine(stats_range.date_to + timedelta(days=1), time.min, tzinfo=tz)
    queryset = Order.objects.filter(placed_at__gte=start, placed_at__lt=end).order_by()
    if stats_range.channels:
        queryset = queryset.filter(channel__in=stats_range.channels)
    return queryset


def order_stats(*, stats_range: StatsRange) -> dict:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The per-customer and per-SKU groupings of a year hold ~10^5 groups; at the default 4 MB they spill
            # to disk and take seconds. Scoped to this transaction only.
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL work_mem = '{STATS_WORK_MEM}'")
        return _order_stats(stats_range)


def _order_stats(stats_range: StatsRange) -> dict:
    base = _base(stats_range)
    revenue_filter = ~Q(status__in=NON_REVENUE_STATUSES)

    # One pass grouped by (period, status, payment status, currency) feeds the status and payment breakdowns,
    # the revenue totals and the timeline; on PostgreSQL it is an index-only scan of the covering index made
    # by migration 0003. Missing periods are filled with zeros.
    period = Trunc("placed_at", stats_range.interval, output_field=DateField())
    rows = list(
        base.annotate(period=period)
        .values("period", "status", "payment_status", "currency")
        .annotate(orders=Count("id"), amount=Sum("total"))
    )
    currencies = sorted({row["currency"] for row in rows})
    by_status: dict[str, dict] = {s: {"orders": 0, "amounts": defaultdict(Decimal)} for s in OrderStatus.values}
    by_payment: dict[str, dict] = {s: {"orders": 0, "amounts": defaultdict(Decimal)} for s in PaymentStatus.values}
    revenue: dict[str, dict] = {code: {"amount": ZERO, "orders": 0} for code in currencies}
    timeline: dict[date, dict] = {
        p: {"orders": 0, "revenue": defaultdict(lambda: {"amount": ZERO, "orders": 0})}
        for p in _periods(stats_range.date_from, stats_range.date_to, stats_range.interval)
    }
    for row in rows:
        for bucket in (by_status[row["status"]], by_payment[row["payment_status"]]):
            bucket["orders"] += row["orders"]
            bucket["amounts"][row["currency"]] += row["amount"]
        entry = timeline[row["period"]]
        entry["orders"] += row["orders"]
        if row["status"] not in NON_REVENUE_STATUSES:
            for totals in (revenue[row["currency"]], entry["revenue"][row["currency"]]):
                totals["amount"] += row["amount"]
                totals["orders"] += row["orders"]

    return {
        "date_from": stats_range.date_from,
        "date_to": stats_range.date_to,
        "interval": stats_range.interval,
        "channels": list(stats_range.channels),
        "currencies": currencies,
        "orders": sum(row["orders"] for row in rows),
        "revenue": [
            {
                "currency": code,
                "amount": revenue[code]["amount"],
                "orders": revenue[code]["orders"],
                "average_order_value": (revenue[code]["amount"] / revenue[code]["orders"])
                if revenue[code]["orders"]
                else ZERO,
            }
            for code in currencies
        ],
        "by_status": [
            {"status": s, "orders": b["orders"], "amounts": _amounts(b["amounts"], currencies)}
            for s, b in by_status.items()
        ],
        "payment_status": [
            {"payment_status": s, "orders": b["orders"], "amounts": _amounts(b["amounts"], currencies)}
            for s, b in by_payment.items()
        ],
        "timeline": [
            {
                "period": p,
                "orders": entry["orders"],
                "revenue": [{"currency": code, **entry["revenue"][code]} for code in currencies],
            }
            for p, entry in timeline.items()
        ],
        "top_customers": _top_customers(base.filter(revenue_filter)),
        "top_products": _top_products(base.filter(revenue_filter)),
    }


def _top_per_currency(queryset: QuerySet, *, order_by: str) -> list[dict]:
    """The TOP_N rows of an aggregated `values()` queryset within each `currency`, ranked by `order_by` desc.

    Django cannot rank over its own GROUP BY (PostgreSQL refuses a window function in the grouping), so the
    ORM-compiled aggregate becomes a subquery and the ranking is one small wrapper, portable to SQLite.
    """
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        # `sql` is Django-compiled with its parameters separate and `order_by` is a column name from this module:
        # no user input is formatted into the statement.
        window = f"ROW_NUMBER() OVER (PARTITION BY agg.currency ORDER BY agg.{order_by} DESC, agg.tiebreak)"
        ranking = f"SELECT agg.*, {window} AS rank FROM ({sql}) agg"  # noqa: S608
        cursor.execute(
            f"SELECT * FROM ({ranking}) ranked WHERE ranked.rank <= %s ORDER BY ranked.currency, ranked.rank",  # noqa: S608
            [*params, TOP_N],
        )
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _top_customers(orders: QuerySet[Order]) -> list[dict]:
    """The TOP_N customers by revenue within each currency (two queries: the ranking, then their names)."""
    aggregated = (
        orders.filter(customer__isnull=False)
        .values("currency", "customer_id")
        .annotate(tiebreak=F("customer_id"), orders=Count("id"), revenue=Sum("total"))
    )
    rows = _top_per_currency(aggregated, order_by="revenue")
    customers = Customer.objects.only("id", "name", "email").in_bulk([row["customer_id"] for row in rows])
    return [
        {
            "currency": row["currency"],
            "customer": {
                "id": row["customer_id"],
                "name": customers[row["customer_id"]].name,
                "email": customers[row["customer_id"]].email,
            },
            "orders": row["orders"],
            "revenue": _decimal(row["revenue"]),
        }
        for row in rows
        if row["customer_id"] in customers
    ]


def _top_products(orders: QuerySet[Order]) -> list[dict]:
    """The TOP_N SKUs by revenue within each currency, from the items as sold (SKU-less lines are left out)."""
    aggregated = (
        OrderItem.objects.filter(order__in=orders.values("id"))
        .exclude(sku="")
        .annotate(currency=F("order__currency"))
        .values("currency", "sku")
        .annotate(
            tiebreak=F("sku"),
            name=Max("name"),
            product_id=Max("product_id"),
            quantity=Sum("quantity"),
            revenue=Sum("line_total"),
        )
        .order_by()
    )
    return [
        {
            "currency": row["currency"],
            "sku": row["sku"],
            "name": row["name"],
            "product_id": row["product_id"],
            "quantity": row["quantity"],
            "revenue": _decimal(row["revenue"]),
        }
        for row in _top_per_currency(aggregated, order_by="revenue")
    ]


def _decimal(value) -> Decimal:
    """Raw SQL on SQLite returns sums of decimals as floats or strings; the API's money is always Decimal."""
    return value if isinstance(value, Decimal) else Decimal(str(value)).quantize(Decimal("0.001"))
