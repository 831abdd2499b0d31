"""What the stats rollups are made of, shared by their writer (`orders.services.stats`) and their reader
(`orders.selectors.stats`), so a rolled-up day and a day aggregated live are computed by the same queries.

A stats day is a calendar day in the project's TIME_ZONE (not the request's), so rollup rows and live aggregation
always agree on where a day starts.
"""

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.db.models import Count, F, Max, Model, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from orders.models import (
    Order,
    OrderItem,
    OrderStatsChannelDailyTotal,
    OrderStatsCustomerWindow,
    OrderStatsDailyTotal,
    OrderStatsDay,
    OrderStatsProductDay,
    OrderStatsProductMonth,
    OrderStatsProductWindow,
)
from orders.transitions import NON_REVENUE_STATUSES

DayRun = tuple[date, date]  # first and last day, inclusive
# Every rollup table (the marks, `OrderStatsDirtyDay`, are not one): what a rebuild empties and refills.
ROLLUP_MODELS: tuple[type[Model], ...] = (
    OrderStatsDailyTotal,
    OrderStatsChannelDailyTotal,
    OrderStatsProductDay,
    OrderStatsProductMonth,
    OrderStatsProductWindow,
    OrderStatsCustomerWindow,
    OrderStatsDay,
)
# A SKU's window (`OrderStatsProductWindow`) spans this many calendar months: a year-long range spans at most 13.
PRODUCT_WINDOW_MONTHS = 13


def stats_timezone():
    return timezone.get_default_timezone()


def stats_day(value: date | datetime) -> date:
    """The stats day of a date or an aware datetime."""
    if isinstance(value, datetime):
        return timezone.localtime(value, stats_timezone()).date()
    return value


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=stats_timezone())


def month_start(day: date, months: int = 0) -> date:
    """The first day of `day`'s month, moved by `months` (negative: back)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def day_runs(days: Iterable[date]) -> list[DayRun]:
    """Days merged into runs of consecutive days, in order: a year of dirty days in a row is one range query."""
    runs: list[list[date]] = []
    for day in sorted(set(days)):
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [(first, last) for first, last in runs]


def placed_on(runs: list[DayRun], *, prefix: str = "") -> Q:
    """Orders placed on any day of `runs` (`prefix` reaches the order from another model, e.g. "order__").
    Matches nothing when `runs` is empty."""
    if not runs:
        return Q(pk__in=[])
    condition = Q()
    for first, last in runs:
        condition |= Q(
            **{f"{prefix}placed_at__gte": day_start(first), f"{prefix}placed_at__lt": day_start(last + timedelta(1))}
        )
    return condition


def daily_totals(orders: QuerySet[Order], *, by_channel: bool = False) -> QuerySet:
    """Orders and amount per day, currency, status and payment status (and channel): `OrderStatsDailyTotal` and
    `OrderStatsChannelDailyTotal` rows."""
    keys = ["channel"] if by_channel else []
    return (
        orders.order_by()
        .annotate(day=TruncDate("placed_at", tzinfo=stats_timezone()))
        .values(*keys, "day", "currency", "status", "payment_status")
        .annotate(orders=Count("id"), amount=Sum("total"))
    )


def revenue_items(items: QuerySet[OrderItem]) -> QuerySet[OrderItem]:
    """The items the top products count: not of a cancelled or refunded order, and with a SKU."""
    return items.exclude(sku="").exclude(order__status__in=NON_REVENUE_STATUSES)


def daily_products(items: QuerySet[OrderItem]) -> QuerySet:
    """Revenue items (`revenue_items`) per day, currency and SKU: `OrderStatsProductDay` rows."""
    return (
        revenue_items(items)
        .order_by()
        .annotate(day=TruncDate("order__placed_at", tzinfo=stats_timezone()), currency=F("order__currency"))
        .values("day", "currency", "sku")
        .annotate(name=Max("name"), product_id=Max("product_id"), quantity=Sum("quantity"), revenue=Sum("line_total"))
    )


def insert_from(model: type[Model], rows: QuerySet) -> None:
    """INSERT INTO `model`'s table the rows of a `values()` queryset in one statement (no row passes through
    Python). The queryset's value names must be `model`'s field names."""
    query = rows.query
    names = list(query.selected)  # the SELECT list in order: the values() names, then later annotations
    columns = ", ".join(connection.ops.quote_name(model._meta.get_field(name).column) for name in names)
    sql, params = query.sql_with_params()
    with connection.cursor() as cursor:
        # `sql` is Django-compiled with its parameters kept separate; table and columns come from model metadata.
        cursor.execute(f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({columns}) {sql}", params)
