"""The stats rollups: per-day aggregates of orders that let GET /api/orders/stats/ answer a year in milliseconds.

Live aggregation of a year (a third of a million orders, close to a million items) takes seconds however it is
indexed, so the stats read per-day rollups (`orders.models.OrderStats*`) instead, and aggregate live only the days
the rollups do not cover yet. That keeps every answer exact, as long as every writer of orders says which days it
touched:

- **Mark.** A writer of orders calls `order_stats_mark_dirty(days=...)` inside the transaction of its write, with
  the day of every order it created, changed or deleted (for an order moved to another day: both days). The
  order services do this; bulk importers call it once per batch. A mark is one appended row, so writers never wait
  on each other.
- **Refresh.** `order_stats_refresh` (periodic task `orders.stats_refresh`) recomputes the marked days, and days
  between the first and last order that were never computed, then deletes the marks it read. Until then the stats
  aggregate those days live.
- **Reconcile.** A writer that forgot to mark still stamps `updated_at`; `order_stats_reconcile` (periodic task
  `orders.stats_reconcile`) marks the days of orders updated after their day was refreshed. What it cannot see:
  raw SQL that leaves `updated_at` alone, and the old day of an order that an unmarked writer moved to another day.
  `manage.py orders_stats_rebuild` recomputes everything after such writes.
- **Rebuild.** `order_stats_rebuild` recomputes every table from scratch (after a raw SQL load, or to repair).

Refreshes and rebuilds take one lock (a PostgreSQL advisory lock; SQLite serialises writers anyway), so two
workers never interleave their deletes and inserts.
"""

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.db import connection, transaction
from django.db.models import DateField, IntegerField, Max, Min, Q, Sum, Value
from django.db.models.functions import TruncDate, TruncMonth
from django.utils import timezone

from orders.models import (
    Order,
    OrderItem,
    OrderStatsChannelDailyTotal,
    OrderStatsCustomerWindow,
    OrderStatsDailyTotal,
    OrderStatsDay,
    OrderStatsDirtyDay,
    OrderStatsProductDay,
    OrderStatsProductMonth,
    OrderStatsProductWindow,
)
from orders.rollups import (
    PRODUCT_WINDOW_MONTHS,
    ROLLUP_MODELS,
    daily_products,
    daily_totals,
    day_runs,
    day_start,
    insert_from,
    month_start,
    placed_on,
    stats_day,
    stats_timezone,
)
from orders.transitions import NON_REVENUE_STATUSES

logger = logging.getLogger(__name__)

REFRESH_BATCH_DAYS = 31  # days recomputed per transaction
MARKS_PER_BATCH = 5_000
_LOCK_KEY = 7_142_003  # arbitrary, unique to the stats rollups among this database's advisory locks
_DELETE_CHUNK = 500
# A write is stamped with updated_at before it commits; a day refreshed within this margin after the stamp may not
# have seen the write yet, so reconcile treats it as stale.
RECONCILE_MARGIN = timedelta(minutes=10)


def order_stats_mark_dirty(*, days: Iterable[date | datetime | None]) -> None:
    """Record that orders on these days changed, so the stats aggregate them live until they are refreshed.

    Call it inside the transaction that writes the orders (atomic with the write: a rolled-back write leaves no
    mark, and a committed one is never missed). `days` may hold dates, aware datetimes (an order's `placed_at`;
    it is reduced to its stats day) and None (ignored). One INSERT, whatever the number of orders.
    """
    unique = sorted({stats_day(value) for value in days if value is not None})
    if unique:
        OrderStatsDirtyDay.objects.bulk_create([OrderStatsDirtyDay(day=day) for day in unique])


def order_stats_refresh(*, max_days: int = 400) -> int:
    """Recompute the rollups of marked days and of never-computed days between the first and the last order, at
    most `max_days` of them, in transactions of `REFRESH_BATCH_DAYS` days. Returns the number of days recomputed.

    Marks are deleted by id in the transaction that recomputed their day: a mark written while a day is being
    recomputed was not read, so it stays and the day is recomputed again on the next run.
    """
    done = 0
    while done < max_days:
        with transaction.atomic():
            _lock()
            marks = list(OrderStatsDirtyDay.objects.order_by("id").values_list("id", "day")[:MARKS_PER_BATCH])
            pending = {day for _, day in marks} | set(_uncomputed_days())
            days = sorted(pending)[: min(REFRESH_BATCH_DAYS, max_days - done)]
            if not days:
                break
            _recompute(days)
            chosen = set(days)
            _delete_marks([pk for pk, day in marks if day in chosen])
        done += len(days)
    if done:
        logger.info("Stats rollups refreshed for %s day(s)", done)
    return done


def order_stats_rebuild() -> int:
    """Recompute every rollup table from all orders, in one transaction. Returns the number of days covered.

    For a first fill, after raw SQL writes, or to repair. Set-based (INSERT ... SELECT): about a minute for a
    million orders on a small machine.
    """
    with transaction.atomic():
        _lock()
        marks = list(OrderStatsDirtyDay.objects.values_list("id", flat=True))
        started = timezone.now()
        for model in ROLLUP_MODELS:
            model._default_manager.all().delete()
        bounds = Order.objects.aggregate(first=Min("placed_at"), last=Max("placed_at"))
        if bounds["first"] is None:
            _delete_marks(marks)
            return 0
        first, last = stats_day(bounds["first"]), stats_day(bounds["last"])
        insert_from(OrderStatsDailyTotal, daily_totals(Order.objects.all()))
        insert_from(OrderStatsChannelDailyTotal, daily_totals(Order.objects.all(), by_channel=True))
        insert_from(OrderStatsProductDay, _in_day_order(daily_products(OrderItem.objects.all())))
        months = _months_between(month_start(first), month_start(last))
        _recompute_product_months(months)
        _recompute_product_windows(_months_between(month_start(first, -(PRODUCT_WINDOW_MONTHS - 1)), months[-1]))
        _recompute_customer_windows(range(first.year - 1, last.year + 1), customers=None)
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        OrderStatsDay.objects.bulk_create(
            [OrderStatsDay(day=day, refreshed_at=started) for day in days], batch_size=1000
        )
        _delete_marks(marks)
    logger.info("Stats rollups rebuilt for %s day(s)", len(days))
    return len(days)


def order_stats_reconcile(*, lookback: timedelta = timedelta(days=1)) -> int:
    """Mark the days of orders updated (per `updated_at`) after their day was last refreshed, within `lookback`:
    the safety net for a writer that changed orders without marking their days. Returns the days marked."""
    since = timezone.now() - lookback
    changed = (
        Order.objects.filter(updated_at__gte=since)
        .order_by()
        .annotate(day=TruncDate("placed_at", tzinfo=stats_timezone()))
        .values("day")
        .annotate(last=Max("updated_at"))
    )
    last_update = {row["day"]: row["last"] for row in changed}
    refreshed = dict(
        OrderStatsDay.objects.filter(day__in=list(last_update)).values_list("day", "refreshed_at")
    )  # days never computed are the refresh's job already
    stale = [day for day, at in refreshed.items() if at < last_update[day] + RECONCILE_MARGIN]
    if stale:
        with transaction.atomic():
            order_stats_mark_dirty(days=stale)
        logger.warning("Stats reconcile marked %s day(s) changed without a mark: %s", len(stale), stale[:10])
    return len(stale)


# --- internals ----------------------------------------------------------------------------------------------------
def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def _delete_marks(ids: list[int]) -> None:
    for start in range(0, len(ids), _DELETE_CHUNK):
        OrderStatsDirtyDay.objects.filter(id__in=ids[start : start + _DELETE_CHUNK]).delete()


def _uncomputed_days() -> list[date]:
    """Days from the first to the last order that have no rollups yet (a new day, or orders written without a
    mark onto a day never computed). Empty days are included: computing one is cheap and settles it."""
    bounds = Order.objects.aggregate(first=Min("placed_at"), last=Max("placed_at"))
    if bounds["first"] is None:
        return []
    first, last = stats_day(bounds["first"]), stats_day(bounds["last"])
    computed = set(OrderStatsDay.objects.filter(day__gte=first, day__lte=last).values_list("day", flat=True))
    missing: list[date] = []
    day = first
    while day <= last and len(missing) < REFRESH_BATCH_DAYS:
        if day not in computed:
            missing.append(day)
        day += timedelta(days=1)
    return missing


def _months_between(first: date, last: date) -> list[date]:
    months, current = [], first
    while current <= last:
        months.append(current)
        current = month_start(current, 1)
    return months


def _recompute(days: list[date]) -> None:
    """Delete and recompute every rollup that depends on `days`, and stamp the days as computed."""
    started = timezone.now()
    runs = day_runs(days)
    orders = Order.objects.filter(placed_on(runs))
    for model in (OrderStatsDailyTotal, OrderStatsChannelDailyTotal, OrderStatsProductDay):
        model.objects.filter(day__in=days).delete()
    insert_from(OrderStatsDailyTotal, daily_totals(orders))
    insert_from(OrderStatsChannelDailyTotal, daily_totals(orders, by_channel=True))
    insert_from(
        OrderStatsProductDay, _in_day_order(daily_products(OrderItem.objects.filter(placed_on(runs, prefix="order__"))))
    )
    months = sorted({month_start(day) for day in days})
    _recompute_product_months(months)
    starts = {month_start(month, -back) for month in months for back in range(PRODUCT_WINDOW_MONTHS)}
    _recompute_product_windows(sorted(starts))
    # Customers whose orders are on these days now; a customer who left them keeps a window that is too high,
    # which is harmless for an upper bound.
    customers = orders.filter(customer__isnull=False).values("customer_id")
    _recompute_customer_windows(sorted({year + back for year in {d.year for d in days} for back in (-1, 0)}), customers)
    OrderStatsDay.objects.filter(day__in=days).delete()
    OrderStatsDay.objects.bulk_create([OrderStatsDay(day=day, refreshed_at=started) for day in days])


def _in_day_order(rows):
    """Rows written in day order lie together on disk, so the stats read a day's rows from a few pages."""
    return rows.order_by("day", "currency", "sku")


def _recompute_product_months(months: list[date]) -> None:
    if not months:
        return
    in_months = Q()
    for month in months:
        in_months |= Q(day__gte=month, day__lt=month_start(month, 1))
    OrderStatsProductMonth.objects.filter(month__in=months).delete()
    insert_from(
        OrderStatsProductMonth,
        OrderStatsProductDay.objects.filter(in_months)
        .order_by()
        .annotate(month=TruncMonth("day"))
        .values("month", "currency", "sku")
        .annotate(quantity=Sum("quantity"), revenue=Sum("revenue"))
        .order_by("month", "currency", "sku"),
    )


def _recompute_product_windows(starts: list[date]) -> None:
    """Each window is the sum of its 13 month rows; a refreshed month changes the 13 windows that contain it."""
    OrderStatsProductWindow.objects.filter(start__in=starts).delete()
    for start in starts:
        insert_from(
            OrderStatsProductWindow,
            OrderStatsProductMonth.objects.filter(month__gte=start, month__lt=month_start(start, PRODUCT_WINDOW_MONTHS))
            .order_by()
            .annotate(start=Value(start, output_field=DateField()))
            .values("start", "currency", "sku")
            .annotate(revenue=Sum("revenue")),
        )


def _recompute_customer_windows(start_years: Iterable[int], customers) -> None:
    """Revenue per customer and currency over two calendar years, for every customer (`customers` None) or those
    in the `customers` subquery (of `customer_id` values)."""
    for year in start_years:
        existing = OrderStatsCustomerWindow.objects.filter(start_year=year)
        orders = Order.objects.filter(
            customer__isnull=False,
            placed_at__gte=day_start(date(year, 1, 1)),
            placed_at__lt=day_start(date(year + 2, 1, 1)),
        ).exclude(status__in=NON_REVENUE_STATUSES)
        if customers is not None:
            existing = existing.filter(customer_id__in=customers)
            orders = orders.filter(customer_id__in=customers)
        existing.delete()
        insert_from(
            OrderStatsCustomerWindow,
            orders.order_by()
            .annotate(start_year=Value(year, output_field=IntegerField()))
            .values("start_year", "currency", "customer_id")
            .annotate(revenue=Sum("total")),
        )
