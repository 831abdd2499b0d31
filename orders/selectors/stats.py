"""Order statistics for a date range: counts and revenue by status, per period (gaps filled), average order
value, top customers, top products and payment-status breakdown.

Revenue is always per currency: sums of different currencies are never added. Revenue counts orders that are
not cancelled or refunded; counts by status and payment status include every order. Dates are inclusive and
read in the project's time zone (UTC).

Where the figures come from (the rollups are described in `orders.services.stats`):

- Each day of the range is *clean* (rolled up, not changed since) or *dirty* (marked as changed, or never rolled
  up). Clean days are read from the rollup tables, dirty days are aggregated live from orders and items with the
  same queries that build the rollups (`orders.rollups`), so every answer is exact and reflects every committed
  write. A year is ~10,000 rollup rows instead of ~330,000 orders.
- Breakdowns and the timeline: two queries over the daily totals (per channel when filtered by channel) plus
  live totals of the dirty days.
- Top products: SKU quantities and revenue from month rows (a month is read whole when that is cheaper, and the
  rows of its days outside the range or stale are taken back out) and day rows (the other clean days), plus the
  live items of the dirty days; the names of the ten best come from their day rows. Filtered by channel, they are
  computed from the items (the product rollups have no channel).
- Top customers: from orders, through the index per customer.
- For long ranges (a quarter or more, with many orders) both top lists are ranked *with a bound* instead of
  summing every customer or SKU: a precomputed revenue over a window that contains the range (two calendar years
  for customers, 13 months for SKUs) is an upper bound of the revenue in the range. The exact revenue of the best
  `*_CANDIDATES` by window is computed (and of every customer with orders on a dirty day); if the tenth of them
  beats the best window revenue left out (for SKUs, plus the most a dirty day adds to a SKU left out), no one
  left out can be in the top ten. Otherwise that currency falls back to the full computation. Exact either way;
  fast when the best customers and SKUs of the range are among the best of its window, which is the usual case.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import Count, DateField, F, Max, Q, QuerySet, Sum, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Trunc, TruncDate

from orders.models import (
    Customer,
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
    OrderStatus,
    PaymentStatus,
)
from orders.rollups import (
    PRODUCT_WINDOW_MONTHS,
    DayRun,
    day_runs,
    month_start,
    placed_on,
    revenue_items,
    stats_timezone,
)
from orders.transitions import NON_REVENUE_STATUSES

INTERVALS = ("day", "week", "month")
TOP_N = 10
STATS_WORK_MEM = "64MB"
ZERO = Decimal("0")
# Ranking with a window bound pays off for long ranges with many orders; below these, the full computation is
# cheap and a bound (a window four times longer than the range) would rarely decide.
BOUNDED_MIN_DAYS = 92
BOUNDED_MIN_ORDERS = 20_000
CUSTOMER_CANDIDATES = 1_000
PRODUCT_CANDIDATES = 150


@dataclass(frozen=True)
class StatsRange:
    date_from: date
    date_to: date
    interval: str
    channels: tuple[str, ...] = ()

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1


@dataclass
class _Days:
    """Which days the rollups answer. `computed` and `marked` cover the whole months the range touches (a month's
    rows include days outside the range); `clean` (computed, not marked) and `dirty_runs` (marked or never
    computed: aggregated live) cover the range."""

    computed: set[date] = field(default_factory=set)
    marked: set[date] = field(default_factory=set)
    clean: set[date] = field(default_factory=set)
    dirty_runs: list[DayRun] = field(default_factory=list)


def _periods(date_from: date, date_to: date, interval: str) -> list[date]:
    """Every period start from the one containing `date_from` to the one containing `date_to`."""
    periods, current = [], _period_of(date_from, interval)
    while current <= date_to:
        periods.append(current)
        if interval == "month":
            current = month_start(current, 1)
        else:
            current += timedelta(days=1 if interval == "day" else 7)
    return periods


def _period_of(day: date, interval: str) -> date:
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _amounts(by_currency: dict[str, Decimal], currencies: list[str]) -> list[dict]:
    return [{"currency": code, "amount": by_currency.get(code, ZERO)} for code in currencies]


def _placed_in(stats_range: StatsRange, *, prefix: str = "") -> Q:
    """Orders placed in the range (and its channels), or the rows whose `prefix` reaches such an order."""
    condition = placed_on([(stats_range.date_from, stats_range.date_to)], prefix=prefix)
    if stats_range.channels:
        condition &= Q(**{f"{prefix}channel__in": stats_range.channels})
    return condition


def _orders_in(stats_range: StatsRange) -> QuerySet[Order]:
    return Order.objects.filter(_placed_in(stats_range)).order_by()


def order_stats(*, stats_range: StatsRange) -> dict:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Scoped to this transaction: a full computation (a long range not rolled up yet, or a fallback) groups
            # up to ~10^5 customers or SKUs, which spills to disk at the default 4 MB; and the statements here are
            # small enough that starting parallel workers costs more than they save.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('work_mem', %s, true), set_config('max_parallel_workers_per_gather', '0', true)",
                    [STATS_WORK_MEM],
                )
        return _order_stats(stats_range)


def _order_stats(stats_range: StatsRange) -> dict:
    days = _day_states(stats_range)
    status_rows, timeline_rows = _breakdown_rows(stats_range, days)
    currencies = sorted({row["currency"] for row in status_rows})
    by_status: dict[str, dict] = {s: {"orders": 0, "amounts": defaultdict(Decimal)} for s in OrderStatus.values}
    by_payment: dict[str, dict] = {s: {"orders": 0, "amounts": defaultdict(Decimal)} for s in PaymentStatus.values}
    revenue: dict[str, dict] = {code: {"amount": ZERO, "orders": 0} for code in currencies}
    for row in status_rows:
        amount = _decimal(row["amount"])
        for bucket in (by_status[row["status"]], by_payment[row["payment_status"]]):
            bucket["orders"] += row["orders"]
            bucket["amounts"][row["currency"]] += amount
        if row["status"] not in NON_REVENUE_STATUSES:
            revenue[row["currency"]]["amount"] += amount
            revenue[row["currency"]]["orders"] += row["orders"]
    timeline: dict[date, dict] = {
        p: {"orders": 0, "revenue": defaultdict(lambda: {"amount": ZERO, "orders": 0})}
        for p in _periods(stats_range.date_from, stats_range.date_to, stats_range.interval)
    }
    for row in timeline_rows:
        entry = timeline[_period_of(row["period"], stats_range.interval)]
        entry["orders"] += row["orders"]
        if row["revenue_orders"]:
            totals = entry["revenue"][row["currency"]]
            totals["amount"] += _decimal(row["revenue"])
            totals["orders"] += row["revenue_orders"]
    order_count = sum(row["orders"] for row in status_rows)
    revenue_currencies = {code: revenue[code]["orders"] for code in currencies if revenue[code]["orders"]}
    bounded = stats_range.days >= BOUNDED_MIN_DAYS and order_count >= BOUNDED_MIN_ORDERS

    return {
        "date_from": stats_range.date_from,
        "date_to": stats_range.date_to,
        "interval": stats_range.interval,
        "channels": list(stats_range.channels),
        "currencies": currencies,
        "orders": order_count,
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
        "top_customers": _top_customers(stats_range, days, revenue_currencies, bounded=bounded),
        "top_products": _top_products(stats_range, days, revenue_currencies, bounded=bounded),
    }


# --- days and breakdowns ------------------------------------------------------------------------------------------
def _day_states(stats_range: StatsRange) -> _Days:
    """One query: the rolled-up days and the marked days of the months the range touches."""
    between = {"day__gte": month_start(stats_range.date_from), "day__lt": month_start(stats_range.date_to, 1)}
    computed = OrderStatsDay.objects.filter(**between).order_by().values_list("day", Value(False))
    marked = OrderStatsDirtyDay.objects.filter(**between).order_by().values_list("day", Value(True))
    states = _Days()
    for day, is_mark in computed.union(marked, all=True):
        (states.marked if is_mark else states.computed).add(day)
    in_range = [stats_range.date_from + timedelta(days=n) for n in range(stats_range.days)]
    states.clean = {day for day in in_range if day in states.computed and day not in states.marked}
    states.dirty_runs = day_runs(day for day in in_range if day not in states.clean)
    return states


def _breakdown_rows(stats_range: StatsRange, days: _Days) -> tuple[list[Any], list[Any]]:
    """Two queries, each over the rollup rows of the clean days and the orders of the dirty days:

    - per currency, status and payment status: orders and amount (the breakdowns and revenue totals);
    - per period (dirty days: per day, mapped to their period by the caller) and currency: orders, and the orders
      and amount that count as revenue (the timeline).
    """
    rollups: QuerySet  # per channel when filtered, else all channels
    if stats_range.channels:
        rollups = OrderStatsChannelDailyTotal.objects.filter(channel__in=stats_range.channels)
    else:
        rollups = OrderStatsDailyTotal.objects.all()
    rollups = (
        rollups.filter(day__gte=stats_range.date_from, day__lte=stats_range.date_to)
        .exclude(day__in=sorted(days.marked))
        .order_by()
    )
    live = _orders_in(stats_range).filter(placed_on(days.dirty_runs))
    counts_as_revenue = ~Q(status__in=NON_REVENUE_STATUSES)
    keys = ("currency", "status", "payment_status")
    statuses = (
        rollups.values(*keys)
        .annotate(orders=Sum("orders"), amount=Sum("amount"))
        .union(live.values(*keys).annotate(orders=Count("id"), amount=Sum("total")), all=True)
    )
    by_day = stats_range.interval == "day"
    period = F("day") if by_day else Trunc("day", stats_range.interval, output_field=DateField())
    timeline = (
        rollups.annotate(period=period)
        .values("period", "currency")
        .annotate(  # "orders" last: once it names the sum, it no longer names the column
            revenue_orders=Sum("orders", filter=counts_as_revenue),
            revenue=Sum("amount", filter=counts_as_revenue),
            orders=Sum("orders"),
        )
        .union(
            live.annotate(day=TruncDate("placed_at", tzinfo=stats_timezone()))
            .values("day", "currency")
            .annotate(
                revenue_orders=Count("id", filter=counts_as_revenue),
                revenue=Sum("total", filter=counts_as_revenue),
                orders=Count("id"),
            ),
            all=True,
        )
    )
    return list(statuses), list(timeline)


# --- top lists ----------------------------------------------------------------------------------------------------
def _candidate_counts(most: int, orders: dict[str, int]) -> dict[str, int]:
    """Candidates per currency: `most` for the currency with the most orders, proportionally fewer (at least a
    tenth) for the others, whose customers are fewer too."""
    busiest = max(orders.values(), default=0) or 1
    return {code: max(most // 10, math.ceil(most * count / busiest)) for code, count in orders.items()}


def _top_customers(stats_range: StatsRange, days: _Days, currencies: dict[str, int], *, bounded: bool) -> list[dict]:
    revenue_orders = _orders_in(stats_range).exclude(status__in=NON_REVENUE_STATUSES).filter(customer__isnull=False)
    start_year = stats_range.date_from.year
    rows: list[dict] = []
    undecided = list(currencies)
    if bounded and currencies and stats_range.date_to.year <= start_year + 1:
        asked = _candidate_counts(CUSTOMER_CANDIDATES, currencies)
        tops = {
            code: OrderStatsCustomerWindow.objects.filter(start_year=start_year, currency=code).order_by(
                "-revenue", "customer_id"
            )
            for code in currencies
        }
        bounds = _left_out_bounds({code: (tops[code], asked[code]) for code in currencies})
        # The candidates go to the database as a subquery (the window tops again, an index-only read): as a list
        # of a few thousand ids they cost more to pass than to find. Customers with orders on dirty days may have
        # a stale window: they are candidates too.
        candidates = _union_subquery(
            [tops[code].values("customer_id")[: asked[code]] for code in currencies]
            + [
                Order.objects.filter(placed_on(days.dirty_runs), customer__isnull=False)
                .order_by()
                .values("customer_id")
            ]
        )
        rows = _customer_ranking(revenue_orders.filter(customer_id__in=candidates), list(currencies))
        undecided = _undecided(rows, bounds, list(currencies))
        rows = [row for row in rows if row["currency"] not in undecided]
    if undecided:
        rows += _customer_ranking(revenue_orders.filter(currency__in=undecided), undecided)
    return [
        {
            "currency": row["currency"],
            "customer": {"id": row["customer_id"], "name": row["name"], "email": row["email"]},
            "orders": row["orders"],
            "revenue": _decimal(row["revenue"]),
        }
        for row in sorted(rows, key=lambda row: (row["currency"], row["rank"]))
    ]


def _customer_ranking(orders: QuerySet[Order], currencies: list[str]) -> list[dict]:
    """The TOP_N customers of each currency by revenue in `orders` (ties by customer id), with their names.

    One statement: the aggregate as a common table expression, then per currency `ORDER BY ... LIMIT`, which
    PostgreSQL answers with a top-N heap instead of sorting every customer of the range (a window function
    would). Names are read per ranked row: a join made the planner scan every customer for a few dozen rows.
    """
    if not currencies:
        return []
    sql, params = (
        orders.values("currency", "customer_id").annotate(orders=Count("id"), revenue=Sum("total")).query
    ).sql_with_params()
    tops = " UNION ALL ".join(
        f"SELECT * FROM (SELECT * FROM agg WHERE agg.currency = %s "  # noqa: S608
        f"ORDER BY agg.revenue DESC, agg.customer_id LIMIT {TOP_N}) AS top{i}"
        for i in range(len(currencies))
    )
    table = connection.ops.quote_name(Customer._meta.db_table)
    names = ", ".join(
        f"(SELECT c.{column} FROM {table} c WHERE c.id = tops.customer_id) AS {column}"  # noqa: S608
        for column in ("name", "email")
    )
    with connection.cursor() as cursor:
        # `sql` is Django-compiled with its parameters apart; every other name is a constant of this module.
        cursor.execute(
            f"WITH agg AS ({sql}) SELECT tops.*, {names} FROM ({tops}) AS tops",  # noqa: S608
            [*params, *currencies],
        )
        columns = [column[0] for column in cursor.description]
        found = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    found.sort(key=lambda row: (row["currency"], -_decimal(row["revenue"]), row["customer_id"]))
    rank: dict[str, int] = defaultdict(int)
    for row in found:
        rank[row["currency"]] += 1
        row["rank"] = rank[row["currency"]]
    return found


def _top_products(stats_range: StatsRange, days: _Days, currencies: dict[str, int], *, bounded: bool) -> list[dict]:
    if stats_range.channels:  # the product rollups have no channel: the items themselves, with their names
        live = _product_sums(_live_items(_placed_in(stats_range, prefix="order__")))
        rows = _product_ranking(live)
    else:
        rows = _top_products_from_rollups(stats_range, days, currencies, bounded=bounded)
    return [
        {
            "currency": row["currency"],
            "sku": row["sku"],
            "name": row["name"],
            "product_id": row["product_id"],
            "quantity": int(row["quantity"]),
            "revenue": row["revenue"],
        }
        for row in rows
    ]


@dataclass
class _ProductChunks:
    """How the SKU sums of the range are read: `months` added whole, minus the day rows of `subtracted` days (in
    those months but outside the range, or marked), plus the day rows of `added` days, plus live items of the
    dirty days."""

    months: list[date] = field(default_factory=list)
    subtracted: list[date] = field(default_factory=list)
    added: list[date] = field(default_factory=list)


# A month's rows cost about as much as this many day rows (a month of SKUs is ~3.5 days of them, at a million
# orders); a month is read whole when that and the days to take out of it cost less than its days in the range.
_MONTH_IN_DAYS = 4


def _product_chunks(stats_range: StatsRange, days: _Days) -> _ProductChunks:
    chunks = _ProductChunks()
    month = month_start(stats_range.date_from)
    while month <= stats_range.date_to:
        following = month_start(month, 1)
        in_range: list[date] = []
        out_of_range: list[date] = []
        for n in range((following - month).days):
            day = month + timedelta(days=n)
            (in_range if stats_range.date_from <= day <= stats_range.date_to else out_of_range).append(day)
        clean = [day for day in in_range if day in days.clean]
        # Month rows hold every computed day of the month as last computed: days outside the range and marked
        # days (their stale rows) come out again. Never-computed days are in neither.
        out = [day for day in out_of_range if day in days.computed] + [d for d in in_range if d in days.marked]
        if _MONTH_IN_DAYS + len(out) < len(clean):
            chunks.months.append(month)
            chunks.subtracted += [day for day in out if day in days.computed]
        else:
            chunks.added += clean
        month = following
    return chunks


_ProductKey = tuple[str, str]  # currency, SKU


@dataclass
class _ProductSum:
    quantity: int = 0
    revenue: Decimal = ZERO
    name: str = ""
    product_id: int | None = None


def _top_products_from_rollups(
    stats_range: StatsRange, days: _Days, currencies: dict[str, int], *, bounded: bool
) -> list[dict]:
    """SKU quantities and revenue from the rollup rows (`_product_chunks`) plus the live items of the dirty days,
    ranked with a window bound for long ranges (see the module docstring), then named (`_product_names`)."""
    chunks = _product_chunks(stats_range, days)
    window_start = month_start(stats_range.date_from)
    use_bound = bounded and currencies and stats_range.date_to < month_start(window_start, PRODUCT_WINDOW_MONTHS)
    # Not scaled by orders like customers: a currency with few orders still sells most SKUs.
    ranked = {
        code: OrderStatsProductWindow.objects.filter(start=window_start, currency=code).order_by("-revenue", "sku")
        for code in (currencies if use_bound else ())
    }
    windows = [window.values_list("currency", "sku", "revenue")[: PRODUCT_CANDIDATES + 1] for window in ranked.values()]
    live_items = _live_items(placed_on(days.dirty_runs, prefix="order__"))
    window_tops, live = _windows_and_live_sums(windows, live_items)
    rows: list[dict] = []
    undecided = list(currencies)
    if use_bound:
        candidates = {sku for tops in window_tops.values() for sku, _ in tops}
        # A SKU left out has at most the best window revenue left out (zero if none was), plus what the dirty days
        # add: its window misses (or holds stale) their revenue, which the live sums have.
        bounds: dict[str, Decimal] = defaultdict(Decimal)
        for code, tops in window_tops.items():
            if len(tops) > PRODUCT_CANDIDATES:
                bounds[code] = min(revenue for _, revenue in tops)
        dirty_best: dict[str, Decimal] = defaultdict(Decimal)
        for (code, sku), total in live.items():
            if sku not in candidates:
                dirty_best[code] = max(dirty_best[code], total.revenue)
        for code, revenue in dirty_best.items():
            bounds[code] += revenue
        # As a subquery (the window tops again, an index-only read) rather than hundreds of parameters.
        skus = _union_subquery([window.values("sku")[: PRODUCT_CANDIDATES + 1] for window in ranked.values()])
        sums = _rollup_sums(chunks, sku__in=skus)
        rows = _product_ranking(_merged(sums, {key: total for key, total in live.items() if key[1] in candidates}))
        undecided = _undecided(rows, dict(bounds), list(currencies))
        rows = [row for row in rows if row["currency"] not in undecided]
    if undecided:
        restrict = {} if len(undecided) == len(currencies) else {"currency__in": undecided}
        sums = _rollup_sums(chunks, **restrict)
        rows += _product_ranking(_merged(sums, {key: total for key, total in live.items() if key[0] in undecided}))
    return _product_names(sorted(rows, key=lambda row: (row["currency"], row["rank"])), stats_range, days, live)


def _windows_and_live_sums(
    windows: list[QuerySet], live_items: QuerySet
) -> tuple[dict[str, list[tuple[str, Decimal]]], dict[_ProductKey, _ProductSum]]:
    """One query: the window tops of each currency, and the live items of the dirty days summed per currency and
    SKU (with the greatest name and product id), so the dirty days are read once."""
    sqls: list[str] = []
    params: list = []
    for i, window in enumerate(windows):
        sql, window_params = window.query.sql_with_params()
        # Typed NULLs: PostgreSQL types a union's columns pairwise, and NULL with NULL would become text.
        nulls = "CAST(NULL AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS BIGINT)"
        sqls.append(f"SELECT 'w', w{i}.*, {nulls} FROM ({sql}) AS w{i}")  # noqa: S608
        params += window_params
    summed = _product_sums_query(live_items)
    try:
        sql, live_params = summed.query.sql_with_params()
        sqls.append(f"SELECT 'd', d.* FROM ({sql}) AS d")  # noqa: S608
        params += live_params
    except EmptyResultSet:  # no dirty days
        pass
    window_tops: dict[str, list[tuple[str, Decimal]]] = defaultdict(list)
    live: dict[_ProductKey, _ProductSum] = {}
    if not sqls:
        return window_tops, live
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(sqls), params)
        for kind, currency, sku, revenue, quantity, name, product_id in cursor.fetchall():
            if kind == "w":
                window_tops[currency].append((sku, _decimal(revenue)))
            else:
                live[(currency, sku)] = _ProductSum(int(quantity), _decimal(revenue), name, product_id)
    return window_tops, live


def _live_items(orders: Q) -> QuerySet:
    """Revenue items (`revenue_items`, as the product rollups count them) of the orders matching `orders` (a
    condition on the items' `order__` fields)."""
    return revenue_items(OrderItem.objects.filter(orders)).order_by().annotate(currency=F("order__currency"))


def _product_sums_query(items: QuerySet) -> QuerySet:
    return items.values("currency", "sku").annotate(
        revenue=Sum("line_total"), quantity=Sum("quantity"), name=Max("name"), product_id=Max("product_id")
    )


def _product_sums(items: QuerySet) -> dict[_ProductKey, _ProductSum]:
    return {
        (row["currency"], row["sku"]): _ProductSum(
            int(row["quantity"]), _decimal(row["revenue"]), row["name"], row["product_id"]
        )
        for row in _product_sums_query(items)
    }


def _rollup_sums(chunks: _ProductChunks, **restrict) -> dict[_ProductKey, _ProductSum]:
    """Quantity and revenue per currency and SKU from the rollup rows: months, minus subtracted days, plus added
    days (narrowed by `restrict`, on currency or SKU). One query."""
    columns = ("currency", "sku", "quantity", "revenue")
    parts = [
        OrderStatsProductMonth.objects.filter(month__in=chunks.months, **restrict).values(*columns),
        OrderStatsProductDay.objects.filter(day__in=chunks.added, **restrict).values(*columns),
        OrderStatsProductDay.objects.filter(day__in=chunks.subtracted, **restrict)
        .annotate(removed_quantity=-F("quantity"), removed_revenue=-F("revenue"))
        .values("currency", "sku", "removed_quantity", "removed_revenue"),
    ]
    union, params = _union_sql([part.order_by() for part in parts])
    if not union:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT parts.currency, parts.sku, SUM(parts.quantity), SUM(parts.revenue) "  # noqa: S608
            f"FROM ({union}) AS parts GROUP BY parts.currency, parts.sku",
            params,
        )
        return {
            (currency, sku): _ProductSum(int(quantity), _decimal(revenue))
            for currency, sku, quantity, revenue in cursor.fetchall()
        }


def _merged(
    sums: dict[_ProductKey, _ProductSum], live: dict[_ProductKey, _ProductSum]
) -> dict[_ProductKey, _ProductSum]:
    merged = dict(sums)
    for key, extra in live.items():
        total = merged.get(key, _ProductSum())
        merged[key] = _ProductSum(total.quantity + extra.quantity, total.revenue + extra.revenue)
    return merged


def _product_ranking(sums: dict[_ProductKey, _ProductSum]) -> list[dict]:
    """The TOP_N SKUs of each currency by revenue, ties by SKU. A SKU sold in the range has a quantity; one sold
    only on days taken back out of a month nets zero and is left out."""
    by_currency: dict[str, list[tuple[str, _ProductSum]]] = defaultdict(list)
    for (currency, sku), total in sums.items():
        if total.quantity > 0:
            by_currency[currency].append((sku, total))
    rows = []
    for currency in sorted(by_currency):
        ranked = sorted(by_currency[currency], key=lambda entry: (-entry[1].revenue, entry[0]))[:TOP_N]
        rows += [
            {
                "currency": currency,
                "sku": sku,
                "rank": rank,
                "quantity": total.quantity,
                "revenue": total.revenue,
                "name": total.name,
                "product_id": total.product_id,
            }
            for rank, (sku, total) in enumerate(ranked, start=1)
        ]
    return rows


def _product_names(
    rows: list[dict], stats_range: StatsRange, days: _Days, live: dict[_ProductKey, _ProductSum]
) -> list[dict]:
    """The greatest name and product id sold under each ranked SKU in the range: the day rows of its clean days
    (one index-only lookup per SKU) and the live items of the dirty days. Kept apart from the sums because a
    greatest value, unlike a sum, cannot be taken back out of a month."""
    if not rows:
        return rows
    # One small statement per SKU (an index-only read each), written out once: compiling thirty querysets cost
    # more than running them.
    table = connection.ops.quote_name(OrderStatsProductDay._meta.db_table)
    marked = sorted(days.marked)
    not_marked = f" AND day NOT IN ({', '.join(['%s'] * len(marked))})" if marked else ""
    one = (
        f"SELECT currency, sku, MAX(name), MAX(product_id) FROM {table} "  # noqa: S608 (table from model metadata)
        f"WHERE currency = %s AND sku = %s AND day >= %s AND day <= %s{not_marked} GROUP BY currency, sku"
    )
    params: list = []
    for row in rows:
        params += [row["currency"], row["sku"], stats_range.date_from, stats_range.date_to, *marked]
    with connection.cursor() as cursor:
        pairs = [f"SELECT * FROM ({one}) AS pair{i}" for i in range(len(rows))]  # noqa: S608
        cursor.execute(" UNION ALL ".join(pairs), params)
        names = {(currency, sku): (name, product_id) for currency, sku, name, product_id in cursor.fetchall()}
    for row in rows:
        name, product_id = names.get((row["currency"], row["sku"]), ("", None))
        extra = live.get((row["currency"], row["sku"]))
        if extra is not None:
            name = max(name or "", extra.name or "")
            product_id = max((value for value in (product_id, extra.product_id) if value is not None), default=None)
        row["name"], row["product_id"] = name, product_id
    return rows


def _union_sql(parts: list[QuerySet]) -> tuple[str, list]:
    """The parts' compiled SQL joined with UNION ALL (parts that can match nothing are left out)."""
    sqls: list[str] = []
    params: list = []
    for part in parts:
        try:
            sql, part_params = part.query.sql_with_params()
        except EmptyResultSet:  # e.g. no dirty days: that part adds nothing
            continue
        sqls.append(sql)
        params += part_params
    union = " UNION ALL ".join(f"SELECT * FROM ({sql}) AS part{i}" for i, sql in enumerate(sqls))  # noqa: S608
    return union, params


def _left_out_bounds(tops: dict[str, tuple[QuerySet, int]]) -> dict[str, Decimal]:
    """Per currency, the window revenue of the best key left out when the first `asked` keys of a window ranking
    are the candidates (the key at offset `asked`); none when every key is a candidate. One query."""
    sqls: list[str] = []
    params: list = []
    for i, (window, asked) in enumerate(tops.values()):
        sql, part_params = window.values("currency", "revenue")[asked : asked + 1].query.sql_with_params()
        sqls.append(f"SELECT * FROM ({sql}) AS b{i}")  # noqa: S608 (Django-compiled, params apart)
        params += part_params
    if not sqls:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(sqls), params)
        return {currency: _decimal(revenue) for currency, revenue in cursor.fetchall()}


def _union_subquery(parts: list[QuerySet]) -> RawSQL:
    """One-column querysets (some sliced, which Django cannot combine on SQLite) as one subquery for `__in`."""
    union, params = _union_sql(parts)
    return RawSQL(union or "SELECT NULL WHERE 1 = 0", params)  # noqa: S611 (Django-compiled, params apart)


def _undecided(rows: list[dict], bounds: dict[str, Decimal], currencies: list[str]) -> list[str]:
    """Currencies whose ranking the bound does not settle: fewer than TOP_N ranked while keys were left out, or a
    tenth revenue that does not beat the bound strictly (a tie could rank a left-out key first)."""
    ranked: dict[str, list[Decimal]] = defaultdict(list)
    for row in rows:
        ranked[row["currency"]].append(_decimal(row["revenue"]))
    undecided = []
    for code in currencies:
        bound = bounds.get(code, ZERO)
        if bound == ZERO:
            continue
        revenues = ranked.get(code, [])
        if len(revenues) < TOP_N or min(revenues) <= bound:
            undecided.append(code)
    return undecided


def _decimal(value) -> Decimal:
    """Raw SQL on SQLite returns sums of decimals as floats or strings; the API's money is always Decimal."""
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value if value is not None else 0)).quantize(Decimal("0.001"))
